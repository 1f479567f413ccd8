/**
 * The assignment journal: what an agent has done with each (task, step, epoch) it accepted,
 * kept across process restarts.
 *
 * An agent killed after its effect and before its output reached the broker comes back as a
 * fresh process whose in-memory deduplication is empty, and its persistent session (or the
 * orchestrator's outbox repair) hands it the same assignment again. The journal lets the
 * runtime answer that redelivery without running the effect twice:
 *
 * - `finished` (with the exact output payload) → the output is published again, `execute()` is not called;
 * - `started` but not finished → `execute()` runs as a resumed attempt (`ctx.resumed`), with the
 *   same `ctx.idempotencyKey`, so an agent whose effect is external can look it up first;
 * - `abandoned` (aborted because the task ended or the step was re-assigned) → nothing is done;
 * - `received` or unknown → an ordinary first attempt.
 *
 * Durability points: `started` is on disk before `execute()` runs, `finished` before the output
 * is published. `received` and `abandoned` are informational and written without a sync.
 */
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { open, rename, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import type { AgentLogger } from './logger';

/** What the journal knows about one (task, step, epoch). */
export type JournalState = 'received' | 'started' | 'finished' | 'abandoned';

/** The (task, step, epoch) an entry is about. */
export interface JournalKey {
  readonly taskRoot: string;
  readonly taskId: string;
  readonly stepId: string;
  readonly epoch: number;
}

/** One journal line: the latest of them per key is the key's record. */
export interface JournalEntry extends JournalKey {
  readonly state: JournalState;
  /** The assignment's deadline (ISO 8601): after it, plus a margin, the entry may be dropped. */
  readonly deadline: string;
  /** When the entry was written (ISO 8601). */
  readonly at: string;
  /** With `finished`: the topic and exact payload of the output, as published. */
  readonly output?: { readonly topic: string; readonly payload: string };
}

/** The journal as the runtime uses it; see the module comment for what each state means. */
export interface AssignmentJournal {
  /** The latest entry for `key`, or undefined when it was never journaled (or was dropped). */
  lookup(key: JournalKey): JournalEntry | undefined;
  /**
   * Records `entry` as the key's latest. Resolves once it is durable when `entry.state` is
   * `started` or `finished`.
   * @throws when the entry could not be written; the caller must then not rely on it
   */
  record(entry: JournalEntry): Promise<void>;
  /** Flushes and releases the journal; later records throw. Idempotent. */
  close(): Promise<void>;
}

/** The text every journal, key and idempotency key is derived from. */
export function journalKeyText(key: JournalKey): string {
  return `${key.taskRoot}/${key.taskId}/${key.stepId}/${key.epoch}`;
}

/**
 * The idempotency key of (task, step, epoch): stable across redeliveries and restarts, distinct
 * for every epoch, and a fixed 64 hex characters so any external API accepts it.
 */
export function idempotencyKeyFor(key: JournalKey): string {
  return createHash('sha256').update(journalKeyText(key)).digest('hex');
}

/** How long past its assignment's deadline an entry is kept: clocks differ, and late redeliveries are refused anyway. */
export const DEFAULT_RETENTION_MARGIN_MS = 10 * 60_000;

/** Removes the entries past their deadline plus `marginMs` from `entries`; returns how many. */
function dropExpired(entries: Map<string, JournalEntry>, now: number, marginMs: number): number {
  let dropped = 0;
  for (const [k, e] of entries) {
    if (expired(e, now, marginMs)) {
      entries.delete(k);
      dropped += 1;
    }
  }
  return dropped;
}

function expired(entry: JournalEntry, now: number, marginMs: number): boolean {
  const deadline = Date.parse(entry.deadline);
  return Number.isFinite(deadline) && deadline + marginMs < now;
}

/** Options shared by both journals. */
export interface JournalOptions {
  /** Entries are dropped this long after their assignment's deadline, ms. @default 10 min */
  readonly retentionMarginMs?: number;
  /** @default Date.now */
  readonly now?: () => number;
}

/**
 * A journal in memory: deduplicates within one process only. For unit tests and for agents that
 * deliberately run without durable state.
 */
export class InMemoryJournal implements AssignmentJournal {
  private readonly entries = new Map<string, JournalEntry>();
  private readonly marginMs: number;
  private readonly now: () => number;
  private closed = false;
  /** Every entry recorded, in order (tests assert on the sequence). */
  readonly history: JournalEntry[] = [];

  constructor(options: JournalOptions = {}) {
    this.marginMs = options.retentionMarginMs ?? DEFAULT_RETENTION_MARGIN_MS;
    this.now = options.now ?? Date.now;
  }

  /** {@inheritDoc AssignmentJournal.lookup} */
  lookup(key: JournalKey): JournalEntry | undefined {
    return this.entries.get(journalKeyText(key));
  }

  /** {@inheritDoc AssignmentJournal.record} */
  record(entry: JournalEntry): Promise<void> {
    if (this.closed) return Promise.reject(new Error('journal is closed'));
    this.history.push(entry);
    this.entries.set(journalKeyText(entry), entry);
    return Promise.resolve();
  }

  /** Drops entries past their deadline plus the margin; returns how many were dropped. */
  compact(): number {
    const dropped = dropExpired(this.entries, this.now(), this.marginMs);
    return dropped;
  }

  /** Number of keys held. */
  get size(): number {
    return this.entries.size;
  }

  /** {@inheritDoc AssignmentJournal.close} */
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

const StoredEntry = z.object({
  v: z.literal(1),
  taskRoot: z.string().min(1),
  taskId: z.string().min(1),
  stepId: z.string().min(1),
  epoch: z.number().int().nonnegative(),
  state: z.enum(['received', 'started', 'finished', 'abandoned']),
  deadline: z.string(),
  at: z.string(),
  output: z.object({ topic: z.string().min(1), payload: z.string() }).optional(),
});

/** Options of {@link FileJournal.open}. */
export interface FileJournalOptions extends JournalOptions {
  /** Warnings about unreadable lines and compaction. */
  readonly log: AgentLogger;
  /** Lines appended before the file is compacted again (expired entries dropped, one line per key). @default 10000 */
  readonly rotateAfterLines?: number;
}

function serialise(entry: JournalEntry): string {
  const { taskRoot, taskId, stepId, epoch, state, deadline, at, output } = entry;
  return `${JSON.stringify({ v: 1, taskRoot, taskId, stepId, epoch, state, deadline, at, ...(output === undefined ? {} : { output }) })}\n`;
}

/**
 * A journal in an append-only JSON-lines file (mode 0600: finished entries hold the output
 * with its fencing token).
 *
 * Opening reads the file, skipping lines that do not parse (a crash mid-write leaves a truncated
 * last line; it is reported, never fatal), drops entries past their deadline plus the margin, and
 * rewrites the file with one line per remaining key (write to a temporary file, fsync, rename,
 * fsync the directory), so it starts with a clean tail. After `rotateAfterLines` appends it is
 * compacted the same way, so it stays bounded by the assignments still live.
 */
export class FileJournal implements AssignmentJournal {
  private readonly entries = new Map<string, JournalEntry>();
  /** Appends and compactions run one after the other, in the order they were asked for. */
  private tail: Promise<void> = Promise.resolve();
  private handle: FileHandle | undefined;
  private appended = 0;
  private closing: Promise<void> | undefined;

  private constructor(
    readonly path: string,
    private readonly log: AgentLogger,
    private readonly marginMs: number,
    private readonly rotateAfterLines: number,
    private readonly now: () => number,
  ) {}

  /**
   * Opens (creating it and its directory when missing) and compacts the journal at `path`.
   * @throws when the file cannot be read or written (a misconfigured path): the agent must not run without its journal
   */
  static async open(path: string, options: FileJournalOptions): Promise<FileJournal> {
    const journal = new FileJournal(
      path,
      options.log,
      options.retentionMarginMs ?? DEFAULT_RETENTION_MARGIN_MS,
      options.rotateAfterLines ?? 10_000,
      options.now ?? Date.now,
    );
    mkdirSync(dirname(path), { recursive: true });
    journal.load();
    await journal.compact();
    return journal;
  }

  private load(): void {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const lines = text.split('\n');
    const bad: number[] = [];
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      try {
        const parsed = StoredEntry.parse(JSON.parse(line));
        const { v: _v, ...entry } = parsed;
        this.entries.set(journalKeyText(entry), entry);
      } catch {
        bad.push(i + 1);
      }
    });
    if (bad.length > 0) {
      // Most likely the last line, cut short by a crash mid-write: its entry was never durable,
      // so nothing relied on it. Anything else is reported too, but still must not stop the agent.
      this.log.warn('journal lines skipped: not a readable entry (a write cut short by a crash?)', { path: this.path, lines: bad.slice(0, 20), count: bad.length });
    }
  }

  /** {@inheritDoc AssignmentJournal.lookup} */
  lookup(key: JournalKey): JournalEntry | undefined {
    return this.entries.get(journalKeyText(key));
  }

  /** {@inheritDoc AssignmentJournal.record} */
  record(entry: JournalEntry): Promise<void> {
    if (this.closing !== undefined) return Promise.reject(new Error(`journal ${this.path} is closed`));
    const durable = entry.state === 'started' || entry.state === 'finished';
    const line = serialise(entry);
    const write = this.tail.then(async () => {
      const handle = this.handle;
      if (handle === undefined) throw new Error(`journal ${this.path} is not open`);
      await handle.write(line);
      // fdatasync also makes the unsynced lines before this one durable, in order.
      if (durable) await handle.datasync();
      // Only now: a lookup must never report a state that might not survive a crash.
      this.entries.set(journalKeyText(entry), entry);
      this.appended += 1;
      if (this.appended >= this.rotateAfterLines) await this.rewrite();
    });
    // A failed write rejects its caller but must not stop the writes queued behind it.
    this.tail = write.catch(() => undefined);
    return write;
  }

  /** Drops expired entries and rewrites the file with one line per key; returns how many were dropped. */
  compact(): Promise<number> {
    const run = this.tail.then(() => this.rewrite());
    this.tail = run.then(() => undefined, () => undefined);
    return run;
  }

  private async rewrite(): Promise<number> {
    const dropped = dropExpired(this.entries, this.now(), this.marginMs);
    await this.handle?.close();
    this.handle = undefined;
    const temporary = `${this.path}.compacting`;
    const fd = openSync(temporary, 'w', 0o600);
    try {
      const body = [...this.entries.values()].map(serialise).join('');
      if (body.length > 0) writeSync(fd, body);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    await rename(temporary, this.path);
    // The rename is durable only once the directory is.
    const dir = openSync(dirname(this.path), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
    this.handle = await open(this.path, 'a', 0o600);
    this.appended = 0;
    if (dropped > 0) this.log.info('journal compacted', { path: this.path, dropped, kept: this.entries.size });
    return dropped;
  }

  /** Number of keys held. */
  get size(): number {
    return this.entries.size;
  }

  /** {@inheritDoc AssignmentJournal.close} */
  close(): Promise<void> {
    this.closing ??= this.tail.then(async () => {
      await this.handle?.close();
      this.handle = undefined;
    });
    return this.closing;
  }
}
