import {
  Assignment, decodePayload, isDecline, MAX_PAYLOAD_BYTES, parseMessage, Proposal, Resume, StepOutput, TaskRequest,
} from '../../../core/schemas';
import { PayloadTooLargeError, ValidationError } from '../../../core/errors';

const SEED_RESUME =
  '{"skills":["sql-optimiser","nl2chart"],"cost":{"usd":0.02,"p95_ms":350},"region":"eu-central-1","accredit":["ISO27001","gdpr"]}';

describe('schemas', () => {
  describe('Resume', () => {
    it("validates the seed article's example as-is and stamps the schema version", () => {
      const resume = decodePayload(Resume, SEED_RESUME, 'résumé');
      expect(resume).toEqual({
        v: 1,
        skills: ['sql-optimiser', 'nl2chart'],
        cost: { usd: 0.02, p95_ms: 350 },
        region: 'eu-central-1',
        accredit: ['ISO27001', 'gdpr'],
      });
    });

    it('tolerates unknown fields', () => {
      const resume = parseMessage(Resume, { ...JSON.parse(SEED_RESUME), favouriteColour: 'teal' }, 'résumé');
      expect(resume.skills).toHaveLength(2);
    });

    it('names every wrong field', () => {
      try {
        parseMessage(Resume, { skills: [], cost: { usd: -1 }, region: '' }, 'résumé');
        throw new Error('expected a ValidationError');
      } catch (err) {
        expect(err).toBeInstanceOf(ValidationError);
        const issues = (err as ValidationError).issues.join('\n');
        expect(issues).toMatch(/^skills:/m);
        expect(issues).toMatch(/^cost\.usd:/m);
        expect(issues).toMatch(/^cost\.p95_ms:/m);
        expect(issues).toMatch(/^region:/m);
      }
    });
  });

  describe('decodePayload', () => {
    it('rejects malformed JSON with invalid-json', () => {
      expect(() => decodePayload(Resume, '{"skills": [', 'résumé')).toThrow(expect.objectContaining({ code: 'invalid-json' }));
    });

    it('rejects a payload over 128 KB before parsing it', () => {
      const huge = new Uint8Array(MAX_PAYLOAD_BYTES + 1);
      expect(() => decodePayload(Resume, huge, 'résumé')).toThrow(PayloadTooLargeError);
    });

    it('accepts bytes as well as strings', () => {
      expect(decodePayload(Resume, new TextEncoder().encode(SEED_RESUME), 'résumé').region).toBe('eu-central-1');
    });
  });

  describe('TaskRequest', () => {
    it('defaults input and constraints', () => {
      const req = parseMessage(TaskRequest, { goal: 'chart it', want: ['chart_svg'] }, 'request');
      expect(req.input).toEqual({});
      expect(req.constraints).toEqual({});
    });

    it('rejects a cancelHash that is not hex SHA-256', () => {
      expect(() => parseMessage(TaskRequest, { goal: 'g', want: ['a'], cancelHash: 'nope' }, 'request')).toThrow(/cancelHash/);
    });
  });

  describe('Proposal', () => {
    it('tells a decline from a bid', () => {
      const decline = parseMessage(Proposal, { decline: true, reason: 'no GPU' }, 'proposal');
      const bid = parseMessage(Proposal, { steps: [{ id: 's1', skill: 'nl2chart', consumes: ['rows'], produces: ['chart_svg'], estUsd: 0.01, estMs: 200 }] }, 'proposal');
      expect(isDecline(decline)).toBe(true);
      expect(isDecline(bid)).toBe(false);
    });

    it('rejects a step with an id that cannot be spliced into a topic', () => {
      expect(() =>
        parseMessage(Proposal, { steps: [{ id: 's/1', skill: 'x', produces: ['a'], estUsd: 0, estMs: 1 }] }, 'proposal'),
      ).toThrow(/steps\.0\.id/);
    });
  });

  describe('StepOutput', () => {
    const fence = { taskId: 't1', stepId: 's1', epoch: 1, token: 'abcdefghijklmnopqrstuv' };

    it('requires output on success and error on failure', () => {
      expect(parseMessage(StepOutput, { ...fence, ok: true, output: { rows: [] } }, 'output').ok).toBe(true);
      expect(() => parseMessage(StepOutput, { ...fence, ok: true }, 'output')).toThrow(/output/);
      expect(() => parseMessage(StepOutput, { ...fence, ok: false }, 'output')).toThrow(/error/);
    });

    it('defaults a failure to retryable', () => {
      const out = parseMessage(StepOutput, { ...fence, ok: false, error: { code: 'boom', message: 'x' } }, 'output');
      expect(out.ok === false && out.error.retryable).toBe(true);
    });
  });

  describe('Assignment', () => {
    it('refuses a guessable short token', () => {
      expect(() =>
        parseMessage(Assignment, {
          taskId: 't1', stepId: 's1', epoch: 1, token: 'short', skill: 'nl2chart', goal: 'g', inputs: {}, produces: ['a'],
          deadline: '2026-11-27T12:00:00Z', leaseMs: 1000,
        }, 'assignment'),
      ).toThrow(/token/);
    });
  });
});
