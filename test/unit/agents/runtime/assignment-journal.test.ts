/**
 * The runtime and its assignment journal: what a (restarted) agent does with an assignment the
 * journal already knows. A "restart" is a second AgentRuntime over a new bus with the first one's
 * journal, the first one having been stopped dead by the test-only kill hook.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentRuntime } from '../../../../agents/runtime/agent-runtime';
import { defineAgent } from '../../../../agents/runtime/define-agent';
import { FAULT_ENV, faultsFromEnvironment, type KillPoint } from '../../../../agents/runtime/fault-injection';
import { FileJournal, InMemoryJournal, idempotencyKeyFor, type AssignmentJournal, type JournalEntry } from '../../../../agents/runtime/journal';
import { ConfigError } from '../../../../core/errors';
import { StepOutput } from '../../../../core/schemas';
import { captureLogger, eventually, FakeBus } from './fake-bus';

const ID = 'agent-j';
const OUTPUT = 'tasks/t1/output/s1/agent-j';
const ASSIGN = 'tasks/t1/assign/agent-j';
const KEY = { taskRoot: 'tasks', taskId: 't1', stepId: 's1', epoch: 1 };

function assignment(epoch = 1) {
  return {
    v: 1, taskId: 't1', stepId: 's1', epoch, token: 'tok-0123456789abcdef-xyz', skill: 'echo', goal: 'echo', inputs: { text: 'hi' },
    produces: ['echoed'], deadline: new Date(Date.now() + 60_000).toISOString(), leaseMs: 30_000,
  };
}

/** An agent whose effect is a counter; it records every context it was called with. */
function effectful() {
  const calls: { idempotencyKey: string; resumed: boolean }[] = [];
  const def = defineAgent({
    id: ID,
    resume: { skills: ['echo'], cost: { usd: 0.01, p95_ms: 50 }, region: 'eu-central-1', maxConcurrent: 2 },
    propose: () => ({ decline: true, reason: 'not bidding in this test' }),
    execute: async (a, ctx) => {
      calls.push({ idempotencyKey: ctx.idempotencyKey, resumed: ctx.resumed });
      return { echoed: `${typeof a.inputs.text === 'string' ? a.inputs.text : '?'}#${calls.length}` };
    },
  });
  return { def, calls };
}

async function startRuntime(journal: AssignmentJournal, killAfterEffect?: KillPoint) {
  const { def, calls } = effectful();
  const bus = new FakeBus();
  const log = captureLogger();
  const kill = jest.fn();
  const runtime = new AgentRuntime(def, bus, { log, journal, ...(killAfterEffect === undefined ? {} : { faults: { duplicateRate: 0, killAfterEffect, kill } }) });
  await runtime.start();
  return { runtime, bus, log, calls, kill };
}

function states(journal: InMemoryJournal): string[] {
  return journal.history.map((e: JournalEntry) => e.state);
}

describe('the assignment journal in the runtime', () => {
  it('journals received, started and finished with the exact payload it publishes, and executes with resumed false and the idempotency key', async () => {
    const journal = new InMemoryJournal();
    const { bus, calls } = await startRuntime(journal);
    bus.deliver(ASSIGN, assignment());
    await eventually(() => expect(bus.on(OUTPUT)).toHaveLength(1));
    expect(calls).toEqual([{ idempotencyKey: idempotencyKeyFor(KEY), resumed: false }]);
    expect(states(journal)).toEqual(['received', 'started', 'finished']);
    expect(journal.lookup(KEY)?.output).toEqual({ topic: OUTPUT, payload: bus.on(OUTPUT)[0]?.payload });
  });

  it('republishes a finished epoch\'s journaled output to a restarted agent without executing it', async () => {
    const journal = new InMemoryJournal();
    const first = await startRuntime(journal);
    first.bus.deliver(ASSIGN, assignment());
    await eventually(() => expect(first.bus.on(OUTPUT)).toHaveLength(1));

    const second = await startRuntime(journal);
    second.bus.deliver(ASSIGN, assignment());
    await eventually(() => expect(second.bus.on(OUTPUT)).toHaveLength(1));
    expect(second.calls).toEqual([]);
    expect(second.bus.on(OUTPUT)[0]?.payload).toBe(first.bus.on(OUTPUT)[0]?.payload);
    expect(second.log.lines.some((l) => l.message === 'assignment already finished; republishing its journaled output')).toBe(true);
    // Another epoch of the same step is new work.
    second.bus.deliver(ASSIGN, assignment(2));
    await eventually(() => expect(second.calls).toEqual([{ idempotencyKey: idempotencyKeyFor({ ...KEY, epoch: 2 }), resumed: false }]));
  });

  it('executes an epoch that started and never finished as a resumed attempt with the same idempotency key', async () => {
    const journal = new InMemoryJournal();
    await journal.record({ ...KEY, state: 'started', deadline: assignment().deadline, at: new Date().toISOString() });
    const { bus, calls } = await startRuntime(journal);
    bus.deliver(ASSIGN, assignment());
    await eventually(() => expect(bus.on(OUTPUT)).toHaveLength(1));
    expect(calls).toEqual([{ idempotencyKey: idempotencyKeyFor(KEY), resumed: true }]);
    expect(StepOutput.parse(JSON.parse(bus.on(OUTPUT)[0]?.payload ?? ''))).toMatchObject({ ok: true, epoch: 1 });
    expect(journal.lookup(KEY)?.state).toBe('finished');
  });

  it('does nothing with an epoch it abandoned (task ended or step re-assigned)', async () => {
    const journal = new InMemoryJournal();
    await journal.record({ ...KEY, state: 'abandoned', deadline: assignment().deadline, at: new Date().toISOString() });
    const { bus, calls, log } = await startRuntime(journal);
    bus.deliver(ASSIGN, assignment());
    await eventually(() => expect(log.lines.some((l) => l.message.startsWith('assignment ignored: it was aborted before'))).toBe(true));
    expect(calls).toEqual([]);
    expect(bus.on(OUTPUT)).toEqual([]);
  });

  it('journals a step aborted by the task ending as abandoned', async () => {
    const journal = new InMemoryJournal();
    const bus = new FakeBus();
    const def = defineAgent({
      id: ID,
      resume: { skills: ['echo'], cost: { usd: 0.01, p95_ms: 50 }, region: 'eu-central-1' },
      propose: () => ({ decline: true, reason: 'no' }),
      execute: (_a, ctx) => new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error))),
    });
    await new AgentRuntime(def, bus, { log: captureLogger(), journal }).start();
    bus.deliver(ASSIGN, assignment());
    await eventually(() => expect(journal.lookup(KEY)?.state).toBe('started'));
    bus.deliver('tasks/t1/status', { v: 1, taskId: 't1', state: 'canceled', phase: 'done', errors: [], version: 3, updatedAt: new Date().toISOString() });
    await eventually(() => expect(journal.lookup(KEY)?.state).toBe('abandoned'));
  });

  it('a restarted agent without its predecessor\'s journal executes the redelivered epoch again (the duplicate effect the journal prevents)', async () => {
    const first = await startRuntime(new InMemoryJournal(), 'before-journal');
    first.bus.deliver(ASSIGN, assignment());
    await eventually(() => expect(first.kill).toHaveBeenCalledTimes(1));
    const second = await startRuntime(new InMemoryJournal());
    second.bus.deliver(ASSIGN, assignment());
    await eventually(() => expect(second.bus.on(OUTPUT)).toHaveLength(1));
    expect([...first.calls, ...second.calls]).toEqual([
      { idempotencyKey: idempotencyKeyFor(KEY), resumed: false },
      { idempotencyKey: idempotencyKeyFor(KEY), resumed: false },
    ]);
  });

  describe('killed after the effect (test-only fault), then restarted with the same file journal', () => {
    let dir: string;
    beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'porchlight-rt-journal-'))));
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('before the output is journaled: nothing is published, and the successor resumes with the same key', async () => {
      const path = join(dir, 'journal.jsonl');
      const first = await startRuntime(await FileJournal.open(path, { log: captureLogger() }), 'before-journal');
      first.bus.deliver(ASSIGN, assignment());
      await eventually(() => expect(first.kill).toHaveBeenCalledTimes(1));
      await new Promise((r) => setTimeout(r, 20));
      expect(first.bus.on(OUTPUT)).toEqual([]);

      const second = await startRuntime(await FileJournal.open(path, { log: captureLogger() }));
      second.bus.deliver(ASSIGN, assignment());
      await eventually(() => expect(second.bus.on(OUTPUT)).toHaveLength(1));
      expect(first.calls).toEqual([{ idempotencyKey: idempotencyKeyFor(KEY), resumed: false }]);
      expect(second.calls).toEqual([{ idempotencyKey: idempotencyKeyFor(KEY), resumed: true }]);
      await second.runtime.stop();
    });

    it('after the output is journaled, before it is published: the successor republishes that exact output and does not execute', async () => {
      const path = join(dir, 'journal.jsonl');
      const firstJournal = await FileJournal.open(path, { log: captureLogger() });
      const first = await startRuntime(firstJournal, 'before-publish');
      first.bus.deliver(ASSIGN, assignment());
      await eventually(() => expect(first.kill).toHaveBeenCalledTimes(1));
      expect(first.bus.on(OUTPUT)).toEqual([]);
      const journaled = firstJournal.lookup(KEY)?.output;
      expect(journaled?.topic).toBe(OUTPUT);

      const second = await startRuntime(await FileJournal.open(path, { log: captureLogger() }));
      second.bus.deliver(ASSIGN, assignment());
      await eventually(() => expect(second.bus.on(OUTPUT)).toHaveLength(1));
      expect(second.calls).toEqual([]);
      expect(second.bus.on(OUTPUT)[0]?.payload).toBe(journaled?.payload);
      expect(StepOutput.parse(JSON.parse(journaled?.payload ?? ''))).toMatchObject({ ok: true, epoch: 1, token: 'tok-0123456789abcdef-xyz', output: { echoed: 'hi#1' } });
      await second.runtime.stop();
    });
  });

  it('does not execute when it cannot journal the start, and hands in a retryable error', async () => {
    const journal = new InMemoryJournal();
    const record = journal.record.bind(journal);
    journal.record = async (e) => {
      if (e.state === 'started') throw new Error('ENOSPC: no space left on device');
      return record(e);
    };
    const { bus, calls } = await startRuntime(journal);
    bus.deliver(ASSIGN, assignment());
    await eventually(() => expect(bus.on(OUTPUT)).toHaveLength(1));
    expect(calls).toEqual([]);
    expect(StepOutput.parse(JSON.parse(bus.on(OUTPUT)[0]?.payload ?? ''))).toMatchObject({ ok: false, error: { code: 'journal-unavailable', retryable: true } });
  });

  it('closes the journal when the agent stops', async () => {
    const journal = new InMemoryJournal();
    const { runtime } = await startRuntime(journal);
    await runtime.stop();
    await expect(journal.record({ ...KEY, state: 'received', deadline: assignment().deadline, at: '' })).rejects.toThrow(/closed/);
  });
});

describe('PORCHLIGHT_FAULT_KILL_AFTER_EFFECT', () => {
  it('reads the kill point on its own or with duplicate delivery, and names the variable when it is wrong', () => {
    expect(faultsFromEnvironment({ [FAULT_ENV.killAfterEffect]: 'before-journal' })).toEqual({ duplicateRate: 0, killAfterEffect: 'before-journal' });
    expect(faultsFromEnvironment({ [FAULT_ENV.killAfterEffect]: 'before-publish', [FAULT_ENV.duplicateRate]: '0.5' })).toEqual({ duplicateRate: 0.5, killAfterEffect: 'before-publish' });
    expect(() => faultsFromEnvironment({ [FAULT_ENV.killAfterEffect]: 'sometimes' })).toThrow(ConfigError);
    expect(() => faultsFromEnvironment({ [FAULT_ENV.killAfterEffect]: 'sometimes' })).toThrow(/PORCHLIGHT_FAULT_KILL_AFTER_EFFECT=sometimes/);
  });
});
