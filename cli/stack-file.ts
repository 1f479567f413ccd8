/**
 * `.porchlight/stack.json`: how commands in other terminals find a running local stack
 * (`porchlight up` or `porchlight demo --keep` writes it; `agents`, `submit`, `watch` read it).
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../core/errors';

/** Default state directory, relative to the working directory. */
export const DEFAULT_STATE_DIR = '.porchlight';

/** What a running stack advertises. */
export const StackFile = z.object({
  pid: z.number().int().positive(),
  stateDir: z.string(),
  caDir: z.string(),
  caPath: z.string(),
  mqttHost: z.string(),
  mqttPort: z.number().int().positive(),
  wsPort: z.number().int().positive(),
  dynamoEndpoint: z.string(),
  tableName: z.string(),
  region: z.string(),
  startedAt: z.string(),
});
export type StackFile = z.infer<typeof StackFile>;

function stackFilePath(stateDir: string): string {
  return join(resolve(stateDir), 'stack.json');
}

/** Writes the stack file; removed again by {@link removeStackFile} on shutdown. */
export function writeStackFile(info: StackFile): void {
  writeFileSync(stackFilePath(info.stateDir), `${JSON.stringify(info, null, 2)}\n`);
}

/** Removes the stack file if it is ours. */
export function removeStackFile(stateDir: string): void {
  const path = stackFilePath(stateDir);
  if (existsSync(path)) rmSync(path);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Reads the stack file of a running stack, or throws a ConfigError telling the user how to start
 * one. A file left by a stack that died is reported as such.
 */
export function readStackFile(stateDir: string): StackFile {
  const path = stackFilePath(stateDir);
  if (!existsSync(path)) {
    throw new ConfigError(`no local stack is running (no ${path}); start one with \`npm run porchlight -- up\` or \`npm start -- --keep\``);
  }
  const parsed = StackFile.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!parsed.success) throw new ConfigError(`${path} is not a stack file: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  if (!alive(parsed.data.pid)) {
    throw new ConfigError(`the local stack that wrote ${path} (pid ${parsed.data.pid}) is no longer running; start one with \`npm run porchlight -- up\``);
  }
  return parsed.data;
}
