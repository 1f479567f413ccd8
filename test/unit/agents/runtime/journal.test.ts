import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileJournal, InMemoryJournal, idempotencyKeyFor, type JournalEntry } from '../../../../agents/runtime/journal';
import { captureLogger } from './fake-bus';

const NOW = Date.parse('2030-01-01T12:00:00.000Z');
const MARGIN = 60_000;

function entry(overrides: Partial<JournalEntry> = {}): JournalEntry {
  return {
    taskRoot: 'tasks', taskId: 't1', stepId: 's1', epoch: 1, state: 'started',
    deadline: new Date(NOW + 60_000).toISOString(), at: new Date(NOW).toISOString(), ...overrides,
  };
}

const KEY = { taskRoot: 'tasks', taskId: 't1', stepId: 's1', epoch: 1 };

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'porchlight-journal-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function lines(path: string): unknown[] {
  return readFileSync(path, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as unknown);
}

describe('idempotencyKeyFor', () => {
  it('is stable for one (task, step, epoch) and differs for another epoch, root or step', () => {
    const key = idempotencyKeyFor(KEY);
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(idempotencyKeyFor({ ...KEY })).toBe(key);
    expect(idempotencyKeyFor({ ...KEY, epoch: 2 })).not.toBe(key);
    expect(idempotencyKeyFor({ ...KEY, taskRoot: 'patient-data' })).not.toBe(key);
    expect(idempotencyKeyFor({ ...KEY, stepId: 's2' })).not.toBe(key);
  });
});

describe('InMemoryJournal', () => {
  it('keeps the latest entry per key and drops expired ones on compact', async () => {
    let now = NOW;
    const journal = new InMemoryJournal({ retentionMarginMs: MARGIN, now: () => now });
    await journal.record(entry({ state: 'received' }));
    await journal.record(entry({ state: 'started' }));
    expect(journal.lookup(KEY)?.state).toBe('started');
    expect(journal.lookup({ ...KEY, epoch: 2 })).toBeUndefined();
    now = NOW + 60_000 + MARGIN - 1;
    expect(journal.compact()).toBe(0);
    now = NOW + 60_000 + MARGIN + 1;
    expect(journal.compact()).toBe(1);
    expect(journal.lookup(KEY)).toBeUndefined();
  });
});

describe('FileJournal', () => {
  it('survives reopening: the latest state and the exact output payload come back', async () => {
    const path = join(dir, 'nested', 'journal.jsonl');
    const payload = '{"v":1,"taskId":"t1","ok":true,"token":"tok"}';
    const journal = await FileJournal.open(path, { log: captureLogger(), now: () => NOW });
    await journal.record(entry({ state: 'received' }));
    await journal.record(entry({ state: 'started' }));
    await journal.record(entry({ state: 'finished', output: { topic: 'tasks/t1/output/s1/a', payload } }));
    await journal.record(entry({ stepId: 's2', state: 'started' }));
    await journal.close();
    await expect(journal.record(entry())).rejects.toThrow(/closed/);

    const reopened = await FileJournal.open(path, { log: captureLogger(), now: () => NOW });
    expect(reopened.lookup(KEY)).toMatchObject({ state: 'finished', output: { topic: 'tasks/t1/output/s1/a', payload } });
    expect(reopened.lookup({ ...KEY, stepId: 's2' })?.state).toBe('started');
    // Opening compacted the file to one line per key.
    expect(lines(path)).toHaveLength(2);
    await reopened.close();
  });

  it('skips a line cut short by a crash and a garbage line with a warning, keeps the rest, and appends cleanly after them', async () => {
    const path = join(dir, 'journal.jsonl');
    const first = await FileJournal.open(path, { log: captureLogger(), now: () => NOW });
    await first.record(entry({ state: 'started' }));
    await first.close();
    appendFileSync(path, 'not json at all\n');
    const finished = JSON.stringify({ v: 1, ...entry({ state: 'finished', output: { topic: 'x', payload: '{}' } }) });
    appendFileSync(path, finished.slice(0, finished.length - 7)); // torn mid-write, no newline

    const log = captureLogger();
    const journal = await FileJournal.open(path, { log, now: () => NOW });
    // The torn `finished` never became durable: the step still counts as started.
    expect(journal.lookup(KEY)?.state).toBe('started');
    const warning = log.lines.find((l) => l.level === 'warn');
    expect(warning?.message).toMatch(/journal lines skipped/);
    expect(warning?.fields).toMatchObject({ count: 2, lines: [2, 3] });
    await journal.record(entry({ stepId: 's3', state: 'started' }));
    await journal.close();
    const reread = await FileJournal.open(path, { log: captureLogger(), now: () => NOW });
    expect(reread.lookup({ ...KEY, stepId: 's3' })?.state).toBe('started');
    expect(lines(path)).toHaveLength(2);
    await reread.close();
  });

  it('drops entries past their deadline plus the margin when it opens', async () => {
    const path = join(dir, 'journal.jsonl');
    writeFileSync(path, [
      JSON.stringify({ v: 1, ...entry({ stepId: 'old', deadline: new Date(NOW - MARGIN - 1).toISOString() }) }),
      JSON.stringify({ v: 1, ...entry({ stepId: 'fresh', deadline: new Date(NOW - MARGIN + 1000).toISOString() }) }),
    ].join('\n') + '\n');
    const journal = await FileJournal.open(path, { log: captureLogger(), retentionMarginMs: MARGIN, now: () => NOW });
    expect(journal.lookup({ ...KEY, stepId: 'old' })).toBeUndefined();
    expect(journal.lookup({ ...KEY, stepId: 'fresh' })?.state).toBe('started');
    expect(lines(path)).toEqual([expect.objectContaining({ stepId: 'fresh' })]);
    await journal.close();
  });

  it('rotates after a number of appends, so the file stays bounded by the live entries', async () => {
    const path = join(dir, 'journal.jsonl');
    let now = NOW;
    const journal = await FileJournal.open(path, { log: captureLogger(), retentionMarginMs: MARGIN, rotateAfterLines: 10, now: () => now });
    for (let i = 0; i < 9; i += 1) await journal.record(entry({ stepId: `s${i}`, state: i % 2 === 0 ? 'received' : 'started' }));
    expect(lines(path)).toHaveLength(9);
    now = NOW + 60_000 + MARGIN + 1; // all of them are past their deadline now
    await journal.record(entry({ stepId: 'late', deadline: new Date(now + 60_000).toISOString() }));
    expect(lines(path)).toEqual([expect.objectContaining({ stepId: 'late' })]);
    expect(journal.size).toBe(1);
    await journal.record(entry({ stepId: 'after', deadline: new Date(now + 60_000).toISOString() }));
    expect(lines(path)).toHaveLength(2);
    await journal.close();
  });

  it('writes the file readable by its owner only (finished entries hold fencing tokens)', async () => {
    const path = join(dir, 'journal.jsonl');
    const journal = await FileJournal.open(path, { log: captureLogger(), now: () => NOW });
    await journal.record(entry());
    await journal.close();
    expect(statSync(path).mode & 0o077).toBe(0);
  });
});
