/**
 * Runs one agent as its own process: settings from the environment, a graceful drain on
 * SIGTERM/SIGINT (what ECS/Fargate and Ctrl-C send), and a distinct exit code per failure.
 */
import { ConfigError } from '../../core/errors';
import { defineAgent, type AgentDefinition, type AgentDefinitionInput } from './define-agent';
import { agentEnvironment } from './connection-env';
import { runAgent, type RunAgentOptions } from './agent-runtime';
import { createJsonLogger, isLogLevel } from './logger';

/** Exit codes of an agent process. */
export const EXIT = { ok: 0, failure: 1, config: 2 } as const;

/**
 * Starts the agent that `create` builds for the id in PORCHLIGHT_AGENT_ID and keeps it running
 * until SIGTERM or SIGINT, then drains it and exits. A second signal exits at once.
 * PORCHLIGHT_LOG_LEVEL (debug|info|warn|error) sets the log level.
 */
export async function runAgentProcess(
  create: (agentId: string) => AgentDefinition | AgentDefinitionInput,
  options: RunAgentOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  const levelText = env.PORCHLIGHT_LOG_LEVEL ?? 'info';
  const level = isLogLevel(levelText) ? levelText : 'info';
  let settings;
  try {
    settings = agentEnvironment(env);
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
  const agent = await runAgent(def, settings.connection, { ...options, log });

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) {
      log.warn('second signal: exiting without waiting for the drain', { signal });
      process.exit(EXIT.failure);
    }
    log.info('signal received; draining', { signal });
    agent.stop({ reason: `received ${signal}` }).then(
      () => process.exit(EXIT.ok),
      (err: unknown) => {
        log.error('drain failed', { error: err });
        process.exit(EXIT.failure);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
