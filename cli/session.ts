/**
 * Shared plumbing for CLI commands: start a stack for the CLI, connect as a client, read the
 * registry. Commands stay short by composing these.
 */
import { watch as watchFile, type FSWatcher } from 'node:fs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoRegistry } from '../functions/adapters/dynamo-registry';
import { certificatePaths, readIdentities, IDENTITIES_FILE, type IdentityEntry } from '../local/ca';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../local/dynamodb';
import { startLocalStack, type LocalStack } from '../local/stack';
import { streamLog, type StackLog } from '../local/log';
import type { AgentRecord } from '../core/model';
import { PorchlightClient } from './client';
import { removeStackFile, writeStackFile, type StackFile } from './stack-file';

/** The identity the CLI uses as an MQTT client of a local stack. */
export const CLI_CLIENT_ID = 'client-cli';

/** Starts the local stack on disk, issues the CLI's client certificate and advertises the stack. */
export async function startStackForCli(stateDir: string, log: StackLog = streamLog('stack')): Promise<LocalStack> {
  const stack = await startLocalStack({ stateDir, log });
  await stack.issue(CLI_CLIENT_ID, 'client');
  writeStackFile(stackInfo(stack));
  return stack;
}

/** What goes into `.porchlight/stack.json`. */
export function stackInfo(stack: LocalStack): StackFile {
  return {
    pid: process.pid,
    stateDir: stack.paths.stateDir,
    caDir: stack.paths.caDir,
    caPath: stack.paths.caPath,
    mqttHost: stack.endpoints.mqttHost,
    mqttPort: stack.endpoints.mqttPort,
    wsPort: stack.endpoints.wsPort,
    dynamoEndpoint: stack.endpoints.dynamoEndpoint,
    tableName: stack.tableName,
    region: LOCAL_REGION,
    startedAt: new Date().toISOString(),
  };
}

/** Stops the stack and withdraws the stack file. */
export async function stopStackForCli(stack: LocalStack): Promise<void> {
  removeStackFile(stack.paths.stateDir);
  await stack.stop();
}

/**
 * Certificates issued by `porchlight certs issue` in another terminal change the CA's identity
 * registry; re-issuing through the stack (which reuses the certificate) reloads the broker ACL
 * so the new identity may connect.
 */
export function applyNewIdentities(stack: LocalStack, log: StackLog): FSWatcher {
  const known = new Map<string, string>();
  const sync = async (): Promise<void> => {
    const identities: Record<string, IdentityEntry> = await readIdentities(stack.paths.caDir);
    for (const [id, entry] of Object.entries(identities)) {
      const fingerprint = JSON.stringify(entry);
      if (known.get(id) === fingerprint) continue;
      known.set(id, fingerprint);
      if (entry.kind === 'broker') continue;
      await stack.issue(id, entry.kind, entry.accreditations);
      log.info('identity admitted to the broker ACL', { identity: id, kind: entry.kind });
    }
  };
  void sync().catch((err: unknown) => log.warn('could not read the CA identities', { error: (err as Error).message }));
  // Watch the directory, not the file: the CA replaces identities.json by renaming a new file
  // over it, which a watch on the old file would never report.
  return watchFile(stack.paths.caDir, (_event, filename) => {
    if (filename !== IDENTITIES_FILE) return;
    sync().catch((err: unknown) => log.warn('could not apply new identities', { error: (err as Error).message }));
  });
}

/** Connects to a running local stack as the CLI's client identity. */
export function connectCliClient(info: StackFile): Promise<PorchlightClient> {
  const { certPath, keyPath } = certificatePaths(info.caDir, CLI_CLIENT_ID);
  return PorchlightClient.connect({ host: info.mqttHost, port: info.mqttPort, caPath: info.caPath, certPath, keyPath, clientId: CLI_CLIENT_ID });
}

/** A registry reader over the stack's DynamoDB Local. */
export function localRegistry(info: Pick<StackFile, 'dynamoEndpoint' | 'tableName' | 'region'>): { readonly registry: DynamoRegistry; readonly close: () => void } {
  const client = new DynamoDBClient({ endpoint: info.dynamoEndpoint, region: info.region, credentials: LOCAL_CREDENTIALS });
  const registry = new DynamoRegistry({ client: DynamoDBDocumentClient.from(client), tableName: info.tableName });
  return { registry, close: () => client.destroy() };
}

/** Polls the registry until every id in `agentIds` is online, or throws after `timeoutMs`. */
export async function waitForAgents(registry: DynamoRegistry, agentIds: readonly string[], timeoutMs = 30_000): Promise<AgentRecord[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const records = await Promise.all(agentIds.map((id) => registry.get(id)));
    if (records.every((r) => r?.state === 'online')) return records as AgentRecord[];
    if (Date.now() > deadline) {
      const missing = agentIds.filter((_, i) => records[i]?.state !== 'online');
      throw new Error(`agents not online in the registry after ${timeoutMs} ms: ${missing.join(', ')}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
