/**
 * Running the external programs the local stack depends on (openssl, mosquitto, java), with
 * errors that say what is missing and how to install it.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { access, constants, readFile, rm, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { ConfigError } from '../core/errors';

/** A program the local stack needs is not installed. The message carries the install command. */
export class MissingDependencyError extends ConfigError {
  constructor(
    readonly program: string,
    readonly installCommand: string,
    purpose: string,
  ) {
    super(`${program} is required ${purpose} but was not found; install it with: ${installCommand}`);
    this.name = 'MissingDependencyError';
  }
}

/** An external program exited non-zero; `stderr` holds what it said. */
export class ExternalCommandError extends Error {
  constructor(
    readonly command: string,
    readonly exitCode: number | string | null,
    readonly stderr: string,
    options?: { cause?: unknown },
  ) {
    super(`${command} failed (exit ${String(exitCode)}): ${stderr.trim() || '(no output)'}`, options);
    this.name = 'ExternalCommandError';
  }
}

/** How to install a program the local stack uses, keyed by program name. */
export const INSTALL_COMMANDS = {
  openssl: 'sudo apt-get install -y openssl',
  mosquitto: 'sudo apt-get install -y mosquitto',
  java: 'sudo apt-get install -y openjdk-17-jre-headless',
} as const;

/** Programs with a known install command. */
export type KnownProgram = keyof typeof INSTALL_COMMANDS;

/**
 * The absolute path of `program`, looked up on PATH and then in `extraDirs` (Debian puts
 * mosquitto in /usr/sbin, which is not on a normal user's PATH); undefined when absent.
 */
export async function findExecutable(program: string, extraDirs: readonly string[] = []): Promise<string | undefined> {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter((d) => d.length > 0), ...extraDirs];
  for (const dir of dirs) {
    const candidate = join(dir, program);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/**
 * Like {@link findExecutable} but throws MissingDependencyError with the install command.
 * @param purpose completes "… is required <purpose>", e.g. "to run the local MQTT broker".
 */
export async function requireExecutable(program: KnownProgram, purpose: string, extraDirs: readonly string[] = []): Promise<string> {
  const found = await findExecutable(program, extraDirs);
  if (found === undefined) throw new MissingDependencyError(program, INSTALL_COMMANDS[program], purpose);
  return found;
}

/** Runs `file args…` to completion and returns its stdout; throws ExternalCommandError on failure. */
export function runCommand(file: string, args: readonly string[], options: { cwd?: string; input?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, [...args], { cwd: options.cwd, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const code = (err as NodeJS.ErrnoException).code;
        reject(new ExternalCommandError(`${file} ${args.join(' ')}`, code ?? null, stderr || err.message, { cause: err }));
        return;
      }
      resolve(stdout);
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Resolves when `child` has exited (immediately if it already has). */
export function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * Stops a child process: SIGTERM, then SIGKILL if it has not exited after `graceMs`.
 * Resolves once it has exited.
 */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = waitForExit(child);
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), graceMs);
  });
  const outcome = await Promise.race([exited.then(() => 'exited' as const), timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    child.kill('SIGKILL');
    await exited;
  }
}

/** Options for {@link waitUntil}. */
export interface WaitOptions {
  readonly timeoutMs: number;
  /** @default 100 */
  readonly intervalMs?: number;
  /** Checked before each probe; an error returned here ends the wait at once (e.g. the process died). */
  readonly fatal?: () => Error | undefined;
}

/**
 * Polls `probe` until it resolves true or the timeout passes; throws naming `what` and the last
 * probe error, or the `fatal` error as soon as there is one.
 */
export async function waitUntil(what: string, probe: () => Promise<boolean>, options: WaitOptions): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  let lastError: unknown;
  for (;;) {
    const fatal = options.fatal?.();
    if (fatal !== undefined) throw fatal;
    try {
      if (await probe()) return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const detail = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${what}${detail}`, { cause: lastError });
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 100));
  }
}

/** True while a process with `pid` exists (signal 0 probes without signalling). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Records `pid` in `pidFile`, so a later start can find the process if this one dies without stopping it. */
export async function writePidFile(pidFile: string, pid: number | undefined): Promise<void> {
  if (pid !== undefined) await writeFile(pidFile, `${pid}\n`);
}

/** Removes a pid file written by {@link writePidFile}; absent is fine. */
export async function removePidFile(pidFile: string): Promise<void> {
  await rm(pidFile, { force: true });
}

/**
 * Stops a process left running by a previous start whose own process died (SIGKILL, a crash)
 * without stopping its children: the pid in `pidFile`, but only while its command line still
 * contains `marker` (a path under the state directory), so a reused pid is never signalled.
 * SIGTERM first, so a broker writes its persistence file; SIGKILL after `graceMs`. Returns the
 * pid it stopped, or undefined when there was nothing to stop. Linux only (/proc); elsewhere a
 * no-op.
 */
export async function stopLeftoverProcess(pidFile: string, marker: string, graceMs = 10_000): Promise<number | undefined> {
  const text = await readFile(pidFile, 'utf8').catch(() => '');
  const pid = Number.parseInt(text.trim(), 10);
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!cmdline.split('\0').some((arg) => arg.includes(marker)) || !alive(pid)) {
    await removePidFile(pidFile);
    return undefined;
  }
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) {
    process.kill(pid, 'SIGKILL');
    while (alive(pid)) await new Promise((r) => setTimeout(r, 50));
  }
  await removePidFile(pidFile);
  return pid;
}
