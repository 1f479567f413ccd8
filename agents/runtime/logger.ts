/**
 * The agent's structured logger: one JSON object per line on stderr, so a container's log
 * driver (CloudWatch, Docker) keeps fields queryable. Injected everywhere; tests capture it.
 */

/** Log levels in increasing severity. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Structured fields attached to a log line. */
export type LogFields = Record<string, unknown>;

/** What agent code and the runtime log through. */
export interface AgentLogger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): AgentLogger;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** True when `value` names a log level. */
export function isLogLevel(value: string): value is LogLevel {
  return Object.prototype.hasOwnProperty.call(RANK, value);
}

function errorFields(value: unknown): unknown {
  if (value instanceof Error) {
    const withCode = value as Error & { code?: unknown };
    return { name: value.name, message: value.message, ...(withCode.code !== undefined ? { code: withCode.code } : {}) };
  }
  return value;
}

/**
 * A JSON-lines logger.
 * @param base fields on every line (e.g. `{ agentId }`)
 * @param level lowest level written
 * @param write where a line goes; @default process.stderr
 */
export function createJsonLogger(base: LogFields, level: LogLevel = 'info', write: (line: string) => void = (l) => process.stderr.write(l)): AgentLogger {
  const emit = (lvl: LogLevel, message: string, fields?: LogFields): void => {
    if (RANK[lvl] < RANK[level]) return;
    const extra: LogFields = {};
    for (const [k, v] of Object.entries(fields ?? {})) extra[k] = errorFields(v);
    write(`${JSON.stringify({ level: lvl, time: new Date().toISOString(), message, ...base, ...extra })}\n`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createJsonLogger({ ...base, ...fields }, level, write),
  };
}
