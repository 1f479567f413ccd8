import { TelemetryWindow, percentile } from '../../../../agents/runtime/telemetry-window';

describe('percentile', () => {
  describe('nearest rank', () => {
    it('returns the value at ceil(p/100 * n)', () => {
      const values = Array.from({ length: 20 }, (_, i) => i + 1);
      expect(percentile(values, 95)).toBe(19);
      expect(percentile(values, 100)).toBe(20);
      expect(percentile([7], 95)).toBe(7);
    });

    it('returns 0 for no values', () => {
      expect(percentile([], 95)).toBe(0);
    });
  });
});

describe('TelemetryWindow', () => {
  describe('with no executions', () => {
    it('has no snapshot', () => {
      expect(new TelemetryWindow().snapshot(0)).toBeUndefined();
    });
  });

  describe('with recorded executions', () => {
    it('computes count, mean cost, p95 duration and success rate', () => {
      const w = new TelemetryWindow();
      const durations = [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1100, 1200, 1300, 1400, 1500, 1600, 1700, 1800, 1900, 5000];
      durations.forEach((ms, i) => w.record({ ok: i % 4 !== 0, usd: i % 2 === 0 ? 0.01 : 0.03, ms, at: 1000 }));
      const s = w.snapshot(1000);
      expect(s).toBeDefined();
      expect(s?.executions).toBe(20);
      expect(s?.costUsd).toBeCloseTo(0.02, 10);
      expect(s?.p95Ms).toBe(1900);
      expect(s?.successRate).toBeCloseTo(15 / 20, 10);
    });
  });

  describe('sliding', () => {
    it('keeps only the most recent samples up to capacity', () => {
      const w = new TelemetryWindow({ capacity: 3 });
      [10, 20, 30, 40].forEach((ms) => w.record({ ok: true, usd: 0, ms, at: 0 }));
      expect(w.snapshot(0)).toMatchObject({ executions: 3, p95Ms: 40 });
    });

    it('ignores samples older than maxAgeMs', () => {
      const w = new TelemetryWindow({ maxAgeMs: 1000 });
      w.record({ ok: false, usd: 1, ms: 900, at: 0 });
      w.record({ ok: true, usd: 0, ms: 100, at: 1500 });
      expect(w.snapshot(1600)).toEqual({ executions: 1, costUsd: 0, p95Ms: 100, successRate: 1 });
      expect(w.snapshot(5000)).toBeUndefined();
    });
  });
});
