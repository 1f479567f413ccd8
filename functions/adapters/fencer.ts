/**
 * Fencing tokens derived with HMAC-SHA-256 (core's Fencer port): the token of (task, step, epoch)
 * is a MAC of the three under a key the orchestrator alone holds — in Secrets Manager on AWS
 * (FENCING_KEY_SECRET_ARN), in a 0600 file of the state directory locally (FENCING_KEY_FILE).
 * Nothing that completes a step is stored anywhere; a database reader learns no live token.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ConfigError } from '../../core/errors';
import type { Fencer } from '../../core/ports';
import { AdapterError, errorMessage, isRetryableSdkError, sdkErrorName } from './errors';

/** The least key material accepted, characters (the generated keys have 64). */
export const MIN_FENCING_KEY_LENGTH = 32;

/** HMAC-SHA-256 of `taskId/stepId/epoch` under `key`, base64url (43 characters). */
export function deriveFencingToken(key: string, taskId: string, stepId: string, epoch: number): string {
  // A separator no id can contain keeps ('a', 'b/c') and ('a/b', 'c') apart.
  return createHmac('sha256', key).update(`${taskId}/${stepId}/${epoch}`, 'utf8').digest('base64url');
}

/** Where the key comes from: loaded once per process, retried after a failure. */
export type FencingKeySource = () => Promise<string>;

/** HMAC-SHA-256 fencing tokens: 43 URL-safe characters. */
export class HmacFencer implements Fencer {
  private key: Promise<string> | undefined;

  constructor(private readonly source: FencingKeySource) {}

  /** The token of `epoch` of step `stepId` of task `taskId`. */
  async token(taskId: string, stepId: string, epoch: number): Promise<string> {
    return deriveFencingToken(await this.loadKey(), taskId, stepId, epoch);
  }

  /** Whether `token` is the token of (task, step, epoch), compared with `timingSafeEqual`. */
  async matches(taskId: string, stepId: string, epoch: number, token: string): Promise<boolean> {
    const expected = Buffer.from(await this.token(taskId, stepId, epoch), 'utf8');
    const presented = Buffer.from(token, 'utf8');
    return expected.length === presented.length && timingSafeEqual(expected, presented);
  }

  private loadKey(): Promise<string> {
    if (this.key === undefined) {
      const pending = this.source().then(checkKey);
      this.key = pending;
      pending.catch(() => {
        if (this.key === pending) this.key = undefined;
      });
    }
    return this.key;
  }
}

function checkKey(key: string): string {
  const trimmed = key.trim();
  if (trimmed.length < MIN_FENCING_KEY_LENGTH) {
    throw new ConfigError(`the fencing key has ${trimmed.length} characters; at least ${MIN_FENCING_KEY_LENGTH} are needed`);
  }
  return trimmed;
}

/** The key in a file (the local stack's state directory). */
export function fileKey(path: string): FencingKeySource {
  return async () => {
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read the fencing key file ${path}: ${errorMessage(err)}`);
    }
  };
}

/** The key as the string value of a Secrets Manager secret. */
export function secretsManagerKey(client: SecretsManagerClient, secretId: string): FencingKeySource {
  return async () => {
    let value: string | undefined;
    try {
      value = (await client.send(new GetSecretValueCommand({ SecretId: secretId }))).SecretString;
    } catch (err) {
      throw new AdapterError(`read fencing key ${secretId}`, `${sdkErrorName(err)}: ${errorMessage(err)}`, isRetryableSdkError(err), { cause: err });
    }
    if (value === undefined) throw new ConfigError(`secret ${secretId} has no string value; the fencing key must be a SecretString`);
    return value;
  };
}
