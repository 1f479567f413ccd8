/**
 * `market-bidder`: the agent of the market benchmark (bench/market.ts). It offers one skill,
 * `market-quote` (`item` → `quote`), whose real cost and duration are fixed, and advertises and
 * bids them multiplied by a claim factor: 1 is an honest agent, 0.1 a liar that claims to be ten
 * times cheaper and faster than it is. Either way it reports its real usage in its outputs (the
 * runtime's `charge`), as a metered agent would, so the orchestrator measures the truth.
 */
import { createHash } from 'node:crypto';
import { defineAgent, type AgentDefinition } from '../../runtime/define-agent';
import { ExecutionAbortedError, StepError } from '../../runtime/errors';
import type { JsonValue } from '../../../core/schemas';

/** The skill every market bidder offers. */
export const MARKET_SKILL = 'market-quote';

/** Tuning of {@link createMarketBidder}. */
export interface MarketBidderOptions {
  /** Real cost of one step, USD (reported in every output). @default 0.01 */
  readonly realUsd?: number;
  /** Real duration of one step, ms. @default 200 */
  readonly realMs?: number;
  /** What the résumé and the bids claim, as a multiple of the real figures (1 honest, 0.1 ten times under). @default 1 */
  readonly claimFactor?: number;
  /** Steps run at once. @default 4 */
  readonly maxConcurrent?: number;
}

/** Builds a market bidder for `id`. Its `quote` artifact names the agent, so a run can tell who did each task. */
export function createMarketBidder(id: string, options: MarketBidderOptions = {}): AgentDefinition {
  const realUsd = options.realUsd ?? 0.01;
  const realMs = options.realMs ?? 200;
  const claim = options.claimFactor ?? 1;
  if (!(claim > 0 && realUsd >= 0 && realMs >= 0)) throw new RangeError(`market bidder needs claimFactor > 0 and non-negative real figures; got ${claim}, ${realUsd}, ${realMs}`);
  const claimedUsd = realUsd * claim;
  const claimedMs = Math.max(1, Math.round(realMs * claim));
  return defineAgent({
    id,
    resume: {
      skills: [MARKET_SKILL],
      cost: { usd: claimedUsd, p95_ms: claimedMs },
      region: 'eu-central-1',
      name: `Market bidder (claims ×${claim})`,
      description: 'Quotes an item; advertises and bids its real cost and duration times a claim factor.',
      version: '1.0.0',
      maxConcurrent: options.maxConcurrent ?? 4,
    },
    propose(request) {
      if (!request.want.includes('quote')) return { decline: true, reason: 'wants no quote' };
      return { steps: [{ id: 'q', skill: MARKET_SKILL, consumes: ['item'], produces: ['quote'], estUsd: claimedUsd, estMs: claimedMs }] };
    },
    async execute(assignment, ctx) {
      const item = assignment.inputs.item;
      if (item === undefined) throw new StepError('invalid-input', `step ${assignment.stepId} needs item`, { retryable: false });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, realMs);
        ctx.signal.addEventListener('abort', () => {
          clearTimeout(timer);
          reject(ctx.signal.reason instanceof Error ? ctx.signal.reason : new ExecutionAbortedError('task-ended', 'aborted'));
        }, { once: true });
      });
      ctx.charge(realUsd);
      const digest = createHash('sha256').update(JSON.stringify(item)).digest('hex').slice(0, 16);
      return { quote: { agentId: id, digest } as unknown as JsonValue };
    },
  });
}
