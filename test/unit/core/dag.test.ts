import { MAX_PROPOSAL_STEPS, MAX_STEP_MS, MAX_STEP_USD, topologicalOrder, validateProposal } from '../../../core/dag';
import { CyclicDagError, InvalidDagError } from '../../../core/errors';
import type { ProposedStep } from '../../../core/schemas';

function step(id: string, consumes: string[], produces: string[], extra: Partial<ProposedStep> = {}): ProposedStep {
  return { id, skill: 'nl2sql', consumes, produces, estUsd: 0.01, estMs: 100, ...extra };
}

function thrown(fn: () => void): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('dag', () => {
  describe('validateProposal', () => {
    describe('when the proposal is well formed', () => {
      it('accepts a chain, a diamond and independent steps', () => {
        expect(() =>
          validateProposal([
            step('d', ['b', 'c'], ['out']),
            step('a', ['in'], ['a1']),
            step('b', ['a1'], ['b']),
            step('c', ['a1'], ['c']),
            step('solo', [], ['other']),
          ]),
        ).not.toThrow();
      });

      it('accepts estimates exactly at the limits', () => {
        expect(() => validateProposal([step('s', [], ['x'], { estUsd: MAX_STEP_USD, estMs: MAX_STEP_MS })])).not.toThrow();
        expect(() => validateProposal([step('s', [], ['x'], { estUsd: 0 })])).not.toThrow();
      });
    });

    describe('when the structure is wrong', () => {
      it('rejects an empty proposal', () => {
        expect(() => validateProposal([])).toThrow(new InvalidDagError('proposal has no steps'));
      });

      it('rejects more steps than allowed', () => {
        const steps = Array.from({ length: MAX_PROPOSAL_STEPS + 1 }, (_, i) => step(`s${i}`, [], [`a${i}`]));
        expect(() => validateProposal(steps)).toThrow(/101 steps; at most 100/);
      });

      it('rejects duplicate step ids', () => {
        expect(() => validateProposal([step('s1', [], ['a']), step('s1', [], ['b'])])).toThrow(
          new InvalidDagError("step id 's1' is used by more than one step"),
        );
      });

      it('rejects a step consuming what it produces itself', () => {
        expect(() => validateProposal([step('s1', ['x', 'y'], ['y'])])).toThrow(
          new InvalidDagError("step 's1' consumes 'y', which it produces itself"),
        );
      });

      it('rejects two steps producing the same artifact as ambiguous', () => {
        expect(() => validateProposal([step('s1', [], ['x']), step('s2', [], ['y', 'x'])])).toThrow(
          new InvalidDagError("artifact 'x' is produced by both step 's1' and step 's2'; it is ambiguous"),
        );
      });

      it('accepts one step listing the same artifact twice', () => {
        expect(() => validateProposal([step('s1', [], ['x', 'x'])])).not.toThrow();
      });
    });

    describe('when estimates are not sane', () => {
      it.each([
        ['estUsd NaN', { estUsd: Number.NaN }, /estUsd NaN; it must be a finite number >= 0/],
        ['estUsd Infinity', { estUsd: Infinity }, /estUsd Infinity/],
        ['negative estUsd', { estUsd: -1 }, /estUsd -1/],
        ['estUsd over the limit', { estUsd: MAX_STEP_USD + 1 }, /estimates \$1001; at most \$1000/],
        ['zero estMs', { estMs: 0 }, /estMs 0; it must be a finite number > 0/],
        ['estMs Infinity', { estMs: Number.POSITIVE_INFINITY }, /estMs Infinity/],
        ['estMs over the limit', { estMs: MAX_STEP_MS + 1 }, /at most 86400000 ms/],
      ])('rejects %s', (_label, extra, message) => {
        const err = thrown(() => validateProposal([step('s1', [], ['x'], extra)]));
        expect(err).toBeInstanceOf(InvalidDagError);
        expect((err as Error).message).toMatch(message);
        expect((err as InvalidDagError).code).toBe('invalid-dag');
      });
    });

    describe('when the steps form a cycle', () => {
      it('names the cycle in order, first id repeated', () => {
        const err = thrown(() =>
          validateProposal([step('a', ['in', 'z'], ['x']), step('b', ['x'], ['y']), step('c', ['y'], ['z']), step('d', ['x'], ['out'])]),
        );
        expect(err).toBeInstanceOf(CyclicDagError);
        expect((err as CyclicDagError).cycle).toEqual(['a', 'b', 'c', 'a']);
        expect((err as Error).message).toBe('proposal has a cycle: a -> b -> c -> a');
      });

      it('finds a two-step cycle downstream of valid steps', () => {
        const err = thrown(() => validateProposal([step('ok', ['in'], ['p']), step('u', ['p', 'w'], ['v']), step('w', ['v'], ['w'])]));
        expect((err as CyclicDagError).cycle).toEqual(['u', 'w', 'u']);
      });

      it('reports the structural error before the cycle when both are present', () => {
        expect(() => validateProposal([step('a', ['y'], ['x']), step('b', ['x'], ['y']), step('b', [], ['z'])])).toThrow(InvalidDagError);
      });
    });
  });

  describe('topologicalOrder', () => {
    describe('when the graph is acyclic', () => {
      it('puts every step after the producers of what it consumes, keeping input order among ready steps', () => {
        const ordered = topologicalOrder([step('d', ['b', 'c'], ['out']), step('c', ['a1'], ['c']), step('a', ['in'], ['a1']), step('b', ['a1'], ['b'])]);
        expect(ordered.map((s) => s.id)).toEqual(['a', 'c', 'b', 'd']);
      });

      it('makes a consumer follow every producer of an artifact with several', () => {
        const ordered = topologicalOrder([step('use', ['x'], ['y']), step('p2', [], ['x']), step('p1', [], ['x'])]);
        expect(ordered.map((s) => s.id)).toEqual(['p2', 'p1', 'use']);
      });

      it('returns an empty order for no steps', () => {
        expect(topologicalOrder([])).toEqual([]);
      });
    });

    describe('when the graph has a cycle', () => {
      it('throws CyclicDagError', () => {
        expect(() => topologicalOrder([step('a', ['y'], ['x']), step('b', ['x'], ['y'])])).toThrow(CyclicDagError);
      });
    });
  });
});
