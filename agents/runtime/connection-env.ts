/**
 * Reads an agent process's connection settings from the environment, naming exactly which
 * variable is missing or wrong.
 */
import { accessSync, constants } from 'node:fs';
import { ConfigError } from '../../core/errors';
import { validateId } from '../../core/topics';
import type { AgentConnection } from './mqtt-bus';

/** The environment variables an agent process reads. */
export const AGENT_ENV = {
  host: 'PORCHLIGHT_HOST',
  port: 'PORCHLIGHT_PORT',
  cert: 'PORCHLIGHT_CERT',
  key: 'PORCHLIGHT_KEY',
  ca: 'PORCHLIGHT_CA',
  agentId: 'PORCHLIGHT_AGENT_ID',
} as const;

/** Connection settings plus the agent id, as read from the environment. */
export interface AgentEnvironment {
  readonly agentId: string;
  readonly connection: AgentConnection;
}

function readable(variable: string, path: string): string {
  try {
    accessSync(path, constants.R_OK);
  } catch (err) {
    throw new ConfigError(`${variable}=${path} is not a readable file (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return path;
}

/**
 * Parses PORCHLIGHT_HOST, PORCHLIGHT_PORT, PORCHLIGHT_CERT, PORCHLIGHT_KEY, PORCHLIGHT_CA
 * (optional: without it the system trust store is used, which holds Amazon's root CA) and
 * PORCHLIGHT_AGENT_ID.
 * @throws ConfigError listing every missing variable, or naming the one that is malformed
 */
export function agentEnvironment(env: NodeJS.ProcessEnv): AgentEnvironment {
  const required = [AGENT_ENV.host, AGENT_ENV.port, AGENT_ENV.cert, AGENT_ENV.key, AGENT_ENV.agentId];
  const missing = required.filter((name) => (env[name] ?? '').trim() === '');
  if (missing.length > 0) throw new ConfigError(`missing environment variable${missing.length > 1 ? 's' : ''}: ${missing.join(', ')}`);
  const get = (name: string): string => (env[name] ?? '').trim();

  const portText = get(AGENT_ENV.port);
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65_535) throw new ConfigError(`${AGENT_ENV.port}=${portText} is not a TCP port (1-65535)`);

  const agentId = get(AGENT_ENV.agentId);
  try {
    validateId('agentId', agentId);
  } catch (err) {
    throw new ConfigError(`${AGENT_ENV.agentId}: ${(err as Error).message}`);
  }
  const ca = get(AGENT_ENV.ca);
  return {
    agentId,
    connection: {
      host: get(AGENT_ENV.host),
      port,
      certPath: readable(AGENT_ENV.cert, get(AGENT_ENV.cert)),
      keyPath: readable(AGENT_ENV.key, get(AGENT_ENV.key)),
      ...(ca === '' ? {} : { caPath: readable(AGENT_ENV.ca, ca) }),
      clientId: agentId,
    },
  };
}
