import { defineAgent } from '../../../../agents/runtime/define-agent';
import { InvalidIdError, ValidationError } from '../../../../core/errors';

const base = {
  resume: { skills: ['sql-optimiser'], cost: { usd: 0.02, p95_ms: 350 }, region: 'eu-central-1' },
  propose: () => ({ decline: true as const, reason: 'n/a' }),
  execute: async () => ({}),
};

describe('defineAgent', () => {
  describe('a valid definition', () => {
    it('fills résumé defaults and takes maxConcurrent from the résumé', () => {
      const def = defineAgent({ ...base, id: 'sql-1', resume: { ...base.resume, maxConcurrent: 3 } });
      expect(def.resume).toMatchObject({ v: 1, accredit: [] });
      expect(def.maxConcurrent).toBe(3);
    });

    it('runs one step at a time when the résumé sets no maxConcurrent', () => {
      expect(defineAgent({ ...base, id: 'sql-1' }).maxConcurrent).toBe(1);
    });
  });

  describe('an invalid definition', () => {
    it('throws InvalidIdError for an id with a topic wildcard', () => {
      expect(() => defineAgent({ ...base, id: 'sql+1' })).toThrow(InvalidIdError);
    });

    it('throws ValidationError naming the bad résumé field', () => {
      expect(() => defineAgent({ ...base, id: 'sql-1', resume: { ...base.resume, cost: { usd: -1, p95_ms: 1 } } })).toThrow(ValidationError);
      expect(() => defineAgent({ ...base, id: 'sql-1', resume: { ...base.resume, skills: [] } })).toThrow(/skills/);
    });
  });
});
