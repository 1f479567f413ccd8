import { seededRandom } from '../../../core/seeded-random';

describe('seededRandom', () => {
  describe('replay', () => {
    it('yields the same sequence for the same seed and a different one for another seed', () => {
      const a = seededRandom(42);
      const b = seededRandom(42);
      const first = Array.from({ length: 5 }, () => a());
      expect(Array.from({ length: 5 }, () => b())).toEqual(first);
      expect(seededRandom(43)()).not.toBe(first[0]);
    });
  });

  describe('range', () => {
    it('stays in [0, 1) and spreads over the interval', () => {
      const r = seededRandom(7);
      const draws = Array.from({ length: 10_000 }, () => r());
      expect(Math.min(...draws)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...draws)).toBeLessThan(1);
      const mean = draws.reduce((x, y) => x + y, 0) / draws.length;
      expect(mean).toBeGreaterThan(0.45);
      expect(mean).toBeLessThan(0.55);
    });
  });
});
