/**
 * Launches example agents as separate processes, the way they run in production (one container
 * each), and stops them with SIGTERM so they drain and publish `offline`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AGENT_ENV } from '../agents/runtime/connection-env';

/** The example agents shipped in agents/examples, by name. */
export const EXAMPLE_AGENTS = ['sql-optimiser', 'nl2chart'] as const;
export type ExampleAgent = (typeof EXAMPLE_AGENTS)[number];

/** Where and as whom an agent process connects. */
export interface AgentConnectionSettings {
  readonly agentId: string;
  readonly host: string;
  readonly port: number;
  readonly caPath: string;
  readonly certPath: string;
  readonly keyPath: string;
}

const REPO_ROOT = resolve(__dirname, '..');

/** Path of an example agent's entry point. */
export function exampleEntry(example: ExampleAgent): string {
  return join(REPO_ROOT, 'agents', 'examples', example, 'main.ts');
}

/** The environment an agent process reads its connection from (agents/runtime/connection-env.ts). */
export function agentProcessEnv(conn: AgentConnectionSettings, extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    [AGENT_ENV.host]: conn.host,
    [AGENT_ENV.port]: String(conn.port),
    [AGENT_ENV.ca]: conn.caPath,
    [AGENT_ENV.cert]: conn.certPath,
    [AGENT_ENV.key]: conn.keyPath,
    [AGENT_ENV.agentId]: conn.agentId,
    ...extra,
  };
}

/**
 * Spawns the agent entry point `entry` (a .ts file) as its own process with stdout and stderr
 * piped. It runs as `node --import tsx`, so the agent is this one process: the tsx CLI would fork
 * a child that survives a SIGKILL of its parent and keeps the connection (and the will) alive.
 */
export function spawnAgentProcess(entry: string, conn: AgentConnectionSettings, extraEnv: Readonly<Record<string, string>> = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: REPO_ROOT,
    env: agentProcessEnv(conn, extraEnv),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** How an example agent process connects and logs. */
export interface AgentLaunch extends AgentConnectionSettings {
  readonly example: ExampleAgent;
  /** Directory for the process's log file. */
  readonly logDir: string;
  readonly extraEnv?: Readonly<Record<string, string>>;
}

/** A running agent process. */
export interface AgentProcess {
  readonly agentId: string;
  readonly child: ChildProcess;
  readonly logPath: string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts one example agent as a child process, logging to `<logDir>/<agentId>.log`. */
export function launchAgent(launch: AgentLaunch): AgentProcess {
  mkdirSync(launch.logDir, { recursive: true });
  const logPath = join(launch.logDir, `${launch.agentId}.log`);
  const log = createWriteStream(logPath, { flags: 'a' });
  const child = spawnAgentProcess(exampleEntry(launch.example), launch, launch.extraEnv);
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  return {
    agentId: launch.agentId,
    child,
    logPath,
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      log.end();
    },
  };
}
