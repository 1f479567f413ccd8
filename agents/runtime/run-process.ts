/**
 * Runs one agent as its own process: settings from the environment, a graceful drain on
 * SIGTERM/SIGINT (what ECS/Fargate and Ctrl-C send), and a distinct exit code per failure.
 */
import { ConfigError } from '../../core/errors';
import { defineAgent, type AgentDefinition, type AgentDefinitionInput } from './define-agent';
import { agentEnvironment } from './connection-env';
import { faultsFromEnvironment } from './fault-injection';
import { runAgent, type RunAgentOptions, type RunningAgent } from './agent-runtime';
import { createJsonLogger, isLogLevel } from './logger';

/** Exit codes of an agent process. */
export const EXIT = { ok: 0, failure: 1, config: 2 } as const;

/** The environment variable naming the assignment journal file. */
export const JOURNAL_ENV = 'PORCHLIGHT_JOURNAL';

/**
 * Starts the agent that `create` builds for the id in PORCHLIGHT_AGENT_ID and keeps it running
 * until SIGTERM or SIGINT, then drains it and exits. A second signal exits at once.
 * PORCHLIGHT_LOG_LEVEL (debug|info|warn|error) sets the log level. PORCHLIGHT_JOURNAL is the
 * assignment journal file (default `.porchlight/agents/{agentId}/journal.jsonl` under the working
 * directory); it must survive a restart of the process for a redelivered assignment not to run
 * its effect twice. PORCHLIGHT_FAULT_DUPLICATE_RATE (and PORCHLIGHT_FAULT_SEED) and
 * PORCHLIGHT_FAULT_KILL_AFTER_EFFECT turn on test-only faults, see fault-injection.ts.
 */
export async function runAgentProcess(
  create: (agentId: string) => AgentDefinition | AgentDefinitionInput,
  options: RunAgentOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  const levelText = env.PORCHLIGHT_LOG_LEVEL ?? 'info';
  const level = isLogLevel(levelText) ? levelText : 'info';
  let settings;
  let faults;
  try {
    settings = agentEnvironment(env);
    faults = faultsFromEnvironment(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`porchlight agent: ${err.message}\n` +
      'Set PORCHLIGHT_HOST, PORCHLIGHT_PORT, PORCHLIGHT_CERT, PORCHLIGHT_KEY, PORCHLIGHT_AGENT_ID and, for a private CA, PORCHLIGHT_CA.\n');
    process.exitCode = EXIT.config;
    return;
  }
  const log = options.log ?? createJsonLogger({ agentId: settings.agentId }, level);
  const built = create(settings.agentId);
  const def = 'maxConcurrent' in built ? built : defineAgent(built);

  const started: { agent?: RunningAgent; pending?: NodeJS.Signals } = {};
  let signals = 0;
  const drain = (running: RunningAgent, signal: NodeJS.Signals): void => {
    log.info('signal received; draining', { signal });
    running.stop({ reason: `received ${signal}` }).then(
      () => process.exit(EXIT.ok),
      (err: unknown) => {
        log.error('drain failed', { error: err });
        process.exit(EXIT.failure);
      },
    );
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) {
      log.warn('second signal: exiting without waiting for the drain', { signal });
      process.exit(EXIT.failure);
    }
    if (started.agent === undefined) {
      // The agent may already be visible as online while start() finishes; dying here would
      // leave the will to say "connection lost" for what was an orderly stop.
      started.pending = signal;
      log.info('signal received while starting; draining once started', { signal });
      return;
    }
    drain(started.agent, signal);
  };
  // Handlers go in before the connection: a signal during birth must drain, not kill.
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  if (faults !== undefined) log.warn('test-only fault injection is on', { duplicateRate: faults.duplicateRate, killAfterEffect: faults.killAfterEffect });
  const journalPath = (env[JOURNAL_ENV] ?? '').trim();
  started.agent = await runAgent(def, settings.connection, {
    ...options,
    ...(faults === undefined ? {} : { faults }),
    ...(journalPath === '' ? {} : { journalPath }),
    log,
  });
  if (started.pending !== undefined) drain(started.agent, started.pending);
}
