/**
 * Launches example agents as separate processes, the way they run in production (one container
 * each), and stops them with SIGTERM so they drain and publish `offline`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The example agents shipped in agents/examples, by name. */
export const EXAMPLE_AGENTS = ['sql-optimiser', 'nl2chart'] as const;
export type ExampleAgent = (typeof EXAMPLE_AGENTS)[number];

/** How an agent process connects. */
export interface AgentLaunch {
  readonly example: ExampleAgent;
  readonly agentId: string;
  readonly host: string;
  readonly port: number;
  readonly caPath: string;
  readonly certPath: string;
  readonly keyPath: string;
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

const REPO_ROOT = resolve(__dirname, '..');

/** Path of an example agent's entry point. */
export function exampleEntry(example: ExampleAgent): string {
  return join(REPO_ROOT, 'agents', 'examples', example, 'main.ts');
}

/** Starts one example agent as a child process (node + tsx), logging to `<logDir>/<agentId>.log`. */
export function launchAgent(launch: AgentLaunch): AgentProcess {
  mkdirSync(launch.logDir, { recursive: true });
  const logPath = join(launch.logDir, `${launch.agentId}.log`);
  const log = createWriteStream(logPath, { flags: 'a' });
  const child = spawn(process.execPath, ['--import', 'tsx', exampleEntry(launch.example)], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      PORCHLIGHT_HOST: launch.host,
      PORCHLIGHT_PORT: String(launch.port),
      PORCHLIGHT_CA: launch.caPath,
      PORCHLIGHT_CERT: launch.certPath,
      PORCHLIGHT_KEY: launch.keyPath,
      PORCHLIGHT_AGENT_ID: launch.agentId,
      ...launch.extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
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
