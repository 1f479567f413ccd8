/**
 * The local stack's own log: one line per event, human-readable, to stderr by default so a
 * command's stdout stays clean for its output.
 */

/** Where the local stack reports what it does. */
export interface StackLog {
  readonly info: (message: string, data?: Readonly<Record<string, unknown>>) => void;
  readonly warn: (message: string, data?: Readonly<Record<string, unknown>>) => void;
  readonly error: (message: string, data?: Readonly<Record<string, unknown>>) => void;
}

function line(level: string, component: string, message: string, data?: Readonly<Record<string, unknown>>): string {
  const suffix = data === undefined || Object.keys(data).length === 0 ? '' : ` ${JSON.stringify(data)}`;
  return `${new Date().toISOString()} ${level} [${component}] ${message}${suffix}\n`;
}

/** A log writing `<time> <LEVEL> [component] message {data}` lines to `stream` (stderr by default). */
export function streamLog(component = 'local', stream: NodeJS.WritableStream = process.stderr): StackLog {
  return {
    info: (m, d) => void stream.write(line('INFO', component, m, d)),
    warn: (m, d) => void stream.write(line('WARN', component, m, d)),
    error: (m, d) => void stream.write(line('ERROR', component, m, d)),
  };
}

/** A log that only keeps warnings and errors (tests: quiet unless something goes wrong). */
export function quietLog(component = 'local', stream: NodeJS.WritableStream = process.stderr): StackLog {
  const inner = streamLog(component, stream);
  return { info: () => undefined, warn: inner.warn, error: inner.error };
}

/** A log that discards everything. */
export const silentLog: StackLog = { info: () => undefined, warn: () => undefined, error: () => undefined };
