/**
 * AccreditationVerifier implementations: what an identity's accreditations and pools really are,
 * as opposed to what its résumé claims. In AWS they are IoT thing groups named `accredit-<label>`
 * and `pool-<name>` (the group policies are what grant the data-class and pool topics); locally,
 * JSON files the local CA writes (`accreditations.json` and, next to it, `pools.json`).
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ListThingGroupsForThingCommand, type IoTClient } from '@aws-sdk/client-iot';
import { z } from 'zod';
import { ConfigError } from '../../core/errors';
import type { AccreditationVerifier } from '../../core/ports';
import { AccreditationLookupError, errorMessage, isRetryableSdkError, sdkErrorName } from './errors';

/** Prefix of the thing groups that confer an accreditation. */
export const ACCREDIT_GROUP_PREFIX = 'accredit-';

/** Prefix of the thing groups whose members form a pool (core/policy.ts `poolGroupName`). */
export const POOL_GROUP_PREFIX = 'pool-';

/** The pools file the local CA writes next to the accreditations file. */
export const POOLS_FILE_NAME = 'pools.json';

/** ListThingGroupsForThing's largest page. */
const PAGE_SIZE = 250;

/** Reads accreditations and pools from the agent's IoT thing groups (`accredit-gdpr` → `gdpr`, `pool-render` → `render`). */
export class IotAccreditationVerifier implements AccreditationVerifier {
  constructor(private readonly client: IoTClient) {}

  /** Labels of every `accredit-*` group the thing is in; none when no such thing exists. */
  async accreditationsOf(agentId: string): Promise<string[]> {
    return this.groupSuffixes(agentId, ACCREDIT_GROUP_PREFIX);
  }

  /** Names of every `pool-*` group the thing is in; none when no such thing exists. */
  async poolsOf(agentId: string): Promise<string[]> {
    return this.groupSuffixes(agentId, POOL_GROUP_PREFIX);
  }

  private async groupSuffixes(agentId: string, prefix: string): Promise<string[]> {
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
        if (name.startsWith(prefix) && name.length > prefix.length) labels.add(name.slice(prefix.length));
      }
      nextToken = page.nextToken ?? undefined;
    } while (nextToken !== undefined && nextToken !== '');
    return [...labels].sort();
  }
}

/** The local CA's accreditation file: identity → accreditation labels. */
export const AccreditationFile = z.record(z.string(), z.array(z.string()));

/**
 * Reads accreditations from the local CA's JSON file, and pools from `pools.json` next to it, on
 * every call, so certificates issued while the stack runs count at once. A missing file means
 * nobody is accredited (or in a pool) yet.
 */
export class FileAccreditationVerifier implements AccreditationVerifier {
  private readonly poolsPath: string;

  constructor(private readonly path: string) {
    this.poolsPath = join(dirname(path), POOLS_FILE_NAME);
  }

  /** The labels the file lists for `agentId`; ConfigError when the file is not valid. */
  async accreditationsOf(agentId: string): Promise<string[]> {
    return this.lookup(this.path, 'ACCREDITATION_FILE', agentId);
  }

  /** The pools `pools.json` lists for `agentId`; ConfigError when the file is not valid. */
  async poolsOf(agentId: string): Promise<string[]> {
    return this.lookup(this.poolsPath, 'the pools file', agentId);
  }

  private async lookup(path: string, what: string, agentId: string): Promise<string[]> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new AccreditationLookupError(agentId, `cannot read ${path}: ${errorMessage(err)}`, false, { cause: err });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new ConfigError(`${what} ${path} is not valid JSON: ${errorMessage(err)}`);
    }
    const parsed = AccreditationFile.safeParse(json);
    if (!parsed.success) {
      throw new ConfigError(`${what} ${path} must map each identity to an array of labels: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
    }
    return [...new Set(parsed.data[agentId] ?? [])].sort();
  }
}
