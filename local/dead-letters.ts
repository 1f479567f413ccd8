/**
 * The local error destination: what Lambda's on-failure destination (rules) and the SQS
 * dead-letter queue (timers) hold in the cloud, as JSON lines in `<state>/dead-letters.jsonl`.
 */
import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { StackLog } from './log';

/** One event that exhausted its retries. */
export interface DeadLetter {
  /** Which part of the local stack gave up on it. */
  readonly source: 'rules-engine' | 'timer-queue' | 'sweeper';
  readonly functionName: string;
  /** The rule that routed it (rules engine only). */
  readonly rule?: string;
  /** Invocations tried, the first included. */
  readonly attempts: number;
  /** The last failure. */
  readonly error: string;
  /** ISO time of the last failure. */
  readonly failedAt: string;
  /** The event (or queue message) as the function received it. */
  readonly event: unknown;
}

/** Where exhausted events go. */
export interface DeadLetterSink {
  write(entry: DeadLetter): Promise<void>;
}

/** A sink appending one JSON line per entry to `path` and logging one error line. */
export function fileDeadLetterSink(path: string, log: StackLog): DeadLetterSink {
  let ready: Promise<unknown> | undefined;
  // Appends are chained so concurrent failures never interleave within a line.
  let chain: Promise<void> = Promise.resolve();
  return {
    write: (entry) => {
      ready ??= mkdir(dirname(path), { recursive: true });
      const next = chain.then(async () => {
        await ready;
        await appendFile(path, `${JSON.stringify(entry)}\n`);
      });
      chain = next.catch(() => undefined);
      log.error('event sent to the error destination', { source: entry.source, functionName: entry.functionName, attempts: entry.attempts, error: entry.error, file: path });
      return next;
    },
  };
}

/** A sink keeping entries in memory (tests). */
export function memoryDeadLetterSink(): DeadLetterSink & { readonly entries: DeadLetter[] } {
  const entries: DeadLetter[] = [];
  return {
    entries,
    write: (entry) => {
      entries.push(entry);
      return Promise.resolve();
    },
  };
}
