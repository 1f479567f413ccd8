/**
 * AccreditationVerifier implementations: what an identity's accreditations really are, as opposed
 * to what its résumé claims. In AWS they are IoT thing groups named `accredit-<label>` (the group
 * policy is what grants the data-class topics); locally, a JSON file the local CA writes.
 */
import { readFile } from 'node:fs/promises';
import { ListThingGroupsForThingCommand, type IoTClient } from '@aws-sdk/client-iot';
import { z } from 'zod';
import { ConfigError } from '../../core/errors';
import type { AccreditationVerifier } from '../../core/ports';
import { AccreditationLookupError, errorMessage, isRetryableSdkError, sdkErrorName } from './errors';

/** Prefix of the thing groups that confer an accreditation. */
export const ACCREDIT_GROUP_PREFIX = 'accredit-';

/** ListThingGroupsForThing's largest page. */
const PAGE_SIZE = 250;

/** Reads accreditations from the agent's IoT thing groups (`accredit-gdpr` → `gdpr`). */
export class IotAccreditationVerifier implements AccreditationVerifier {
  constructor(private readonly client: IoTClient) {}

  /** Labels of every `accredit-*` group the thing is in; none when no such thing exists. */
  async accreditationsOf(agentId: string): Promise<string[]> {
    const labels = new Set<string>();
    let nextToken: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListThingGroupsForThingCommand({ thingName: agentId, maxResults: PAGE_SIZE, ...(nextToken !== undefined ? { nextToken } : {}) }),
        );
      } catch (err) {
        if (sdkErrorName(err) === 'ResourceNotFoundException') return [];
        throw new AccreditationLookupError(agentId, `${sdkErrorName(err)}: ${errorMessage(err)}`, isRetryableSdkError(err), { cause: err });
      }
      for (const group of page.thingGroups ?? []) {
        const name = group.groupName ?? '';
        if (name.startsWith(ACCREDIT_GROUP_PREFIX) && name.length > ACCREDIT_GROUP_PREFIX.length) labels.add(name.slice(ACCREDIT_GROUP_PREFIX.length));
      }
      nextToken = page.nextToken ?? undefined;
    } while (nextToken !== undefined && nextToken !== '');
    return [...labels].sort();
  }
}

/** The local CA's accreditation file: identity → accreditation labels. */
export const AccreditationFile = z.record(z.string(), z.array(z.string()));

/**
 * Reads accreditations from the local CA's JSON file on every call, so certificates issued while
 * the stack runs count at once. A missing file means nobody is accredited yet.
 */
export class FileAccreditationVerifier implements AccreditationVerifier {
  constructor(private readonly path: string) {}

  /** The labels the file lists for `agentId`; ConfigError when the file is not valid. */
  async accreditationsOf(agentId: string): Promise<string[]> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new AccreditationLookupError(agentId, `cannot read ${this.path}: ${errorMessage(err)}`, false, { cause: err });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new ConfigError(`ACCREDITATION_FILE ${this.path} is not valid JSON: ${errorMessage(err)}`);
    }
    const parsed = AccreditationFile.safeParse(json);
    if (!parsed.success) {
      throw new ConfigError(`ACCREDITATION_FILE ${this.path} must map each identity to an array of labels: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
    }
    return [...new Set(parsed.data[agentId] ?? [])].sort();
  }
}
