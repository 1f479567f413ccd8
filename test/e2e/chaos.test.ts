/**
 * Chaos: 200 two-step tasks through the whole local stack while a random agent process is
 * SIGKILLed and restarted every few seconds, the broker is restarted once, and 5 % of messages
 * are delivered twice (to the handlers and to the agents). Every task must reach a terminal
 * state, none may be lost, and the agents' effect ledger must show that no accepted step's
 * effect happened twice. The counts are printed.
 */
import { checkEffects, describeChaosReport, formatChaosLine, parseLedger, runChaosScenario, type ChaosReport } from '../../bench/lib/chaos-scenario';
import type { EffectLine } from '../../agents/examples/chaos-worker/agent';
import type { StepRecord } from '../../core/model';

jest.setTimeout(240_000);

describe('chaos scenario', () => {
  describe('200 tasks under agent kills, a broker restart and duplicate delivery', () => {
    let report: ChaosReport;

    beforeAll(async () => {
      report = await runChaosScenario({ tasks: 200, seed: 7, settleTimeoutMs: 120_000 });
      process.stdout.write(`chaos e2e (200 tasks):\n${describeChaosReport(report)}\n${formatChaosLine(report)}\n`);
    }, 240_000);

    it('loses no task: every submitted task has a terminal result and a terminal stored record', () => {
      expect(report.submitted).toBe(200);
      expect(report.lost).toBe(0);
      expect(report.completed + report.failed + report.otherTerminal).toBe(200);
      expect(report.storeMissing).toBe(0);
      expect(report.storeNotTerminal).toBe(0);
    });

    it('never accepts an effect twice', () => {
      expect(report.effectFindings).toEqual([]);
      expect(report.duplicateEffects).toBe(0);
      // Every completed task accounts for one effect per step.
      expect(report.ledgerLines).toBeGreaterThanOrEqual(report.completed * 2);
    });

    it('really injected the faults: kills, exactly one broker restart, duplicates at both ends', () => {
      expect(report.kills).toBeGreaterThanOrEqual(1);
      expect(report.brokerRestarts).toBe(1);
      expect(report.duplicatesInjected.rulesEngine).toBeGreaterThan(0);
      expect(report.duplicatesInjected.agents).toBeGreaterThan(0);
    });

    it('fails almost no task, and any failure says why', () => {
      // A step whose capable agents are only briefly offline (killed, or every agent's will
      // published by the broker's shutdown) waits for one to return instead of failing. Observed:
      // 200 of 200 and 1,000 of 1,000 completed; a small margin keeps a slow CI machine (where a
      // wait can outlast its limit) from failing the build on one unlucky task.
      expect(report.completed).toBeGreaterThanOrEqual(196);
      for (const reason of Object.keys(report.failureReasons)) {
        expect(reason).toMatch(/waiting for an agent|attempts|deadline/);
      }
    });
  });

  describe('the effect check', () => {
    const step = (epoch: number, state: StepRecord['state'] = 'completed'): Pick<StepRecord, 'epoch' | 'state' | 'produces'> => ({ epoch, state, produces: [`x_${epoch}`] });
    const line = (stepId: string, epoch: number, effectId: string): EffectLine => ({ taskId: 't1', stepId, epoch, agentId: 'a1', effectId, at: '2026-01-01T00:00:00.000Z' });
    const task = (steps: Record<string, ReturnType<typeof step>>, outputs: Record<string, unknown>) =>
      ({ taskId: 't1', record: { steps: steps as unknown as Record<string, StepRecord> }, outputs });

    it('passes one effect per accepted epoch, superseded epochs aside', () => {
      const ledger = [line('s1', 1, 'e-old'), line('s1', 2, 'e1')];
      const check = checkEffects(ledger, [task({ s1: step(2) }, { x_2: { effect: 'e1' } })]);
      expect(check).toEqual({ duplicateEffects: 0, findings: [], superseded: 1 });
    });

    it('counts an accepted epoch whose effect happened twice', () => {
      const ledger = [line('s1', 1, 'e1'), line('s1', 1, 'e2')];
      const check = checkEffects(ledger, [task({ s1: step(1) }, { x_1: { effect: 'e1' } })]);
      expect(check.duplicateEffects).toBe(1);
      expect(check.findings[0]).toMatch(/2 effects for one accepted epoch/);
    });

    it('counts a result naming an effect that is missing, recorded for another epoch, or reused', () => {
      expect(checkEffects([line('s1', 1, 'e1')], [task({ s1: step(1) }, { x_1: { effect: 'nope' } })]).duplicateEffects).toBe(1);
      expect(checkEffects([line('s1', 1, 'e1'), line('s1', 2, 'e2')], [task({ s1: step(2) }, { x_2: { effect: 'e1' } })]).findings)
        .toEqual([expect.stringMatching(/recorded for t1\/s1\/1/)]);
      const reused = checkEffects([line('s1', 1, 'e1'), line('s2', 1, 'e2')], [task({ s1: step(1), s2: { ...step(1), produces: ['y'] } }, { x_1: { effect: 'e1' }, y: { effect: 'e1' } })]);
      expect(reused.findings).toEqual(expect.arrayContaining([expect.stringMatching(/named by t1\/s1\/1 and t1\/s2\/1/)]));
    });

    it('refuses a ledger with an interleaved (non-JSON) line', () => {
      expect(() => parseLedger('{"taskId":"t1"}\n{"taskId":"t2"{"taskId"\n')).toThrow(/line 2 is not JSON/);
    });
  });
});
