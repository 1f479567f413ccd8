/**
 * Reputation from measurements: what the orchestrator itself observed of each agent, and how
 * planning and matching use it (docs/RELIABILITY.md, "Reputation from measurements").
 *
 * The orchestrator records one {@link MeasurementSample} per accepted output (ok or error), per
 * lapsed lease and per step lost to an agent going away. The registry keeps only sums
 * ({@link AgentMeasurements}), so an update is a set of atomic additions (DynamoDB `ADD`): no
 * read, no version race. Latency is a histogram over fixed log-scale buckets
 * ({@link LATENCY_BUCKET_BOUNDS_MS}), so p50/p95 come from the sums too.
 *
 * Self-reports (résumé, bids) are the prior; measurements move the figures away from them as they
 * accumulate. With n measured steps and a prior weight of k = {@link REPUTATION_PRIOR_STEPS}:
 *
 *   ratio      r  = Σ actual / Σ bid                           (USD over costed steps, ms over timed steps)
 *   shrunk     r̂  = (n·r + k) / (n + k)                        (the prior is "the bid is right": r = 1)
 *   factor     f  = 1                                          when r̂ ≤ 1
 *              f  = r̂ · (1 + λ·(r̂ − 1))                        when r̂ > 1, λ = {@link MISCALIBRATION_PENALTY}
 *   success    p̂  = (successes + k·p₀) / (n + k)               (p₀ = the matcher's unmeasured success rate)
 *   latency    p95̂ = (n·p95_measured + k·p95_résumé) / (n + k)
 *
 * Planning multiplies each bid's estUsd by the bidder's USD factor and estMs by its ms factor, so
 * the cheapest derivation is the cheapest by what agents actually cost: an agent that bids a tenth
 * of what it reports pays ten times its bid plus a penalty that grows with the miscalibration
 * (r̂ = 10 gives f = 55), and loses to an honest agent (f = 1) with the same true cost. An agent
 * that costs less than it bids is not rewarded for it (f = 1). Matching ranks by the résumé price
 * times the USD factor, the shrunk p95 times the ms penalty, and the shrunk success rate.
 */
import type { AgentRecord } from './model';
import type { Bidder, PlanInput, PlanOutcome, PlannedStep } from './plan-types';

/** Weight of the self-report, in steps: after k measured steps the measurement counts as much as the claim. */
export const REPUTATION_PRIOR_STEPS = 3;

/** λ: how fast the penalty grows with the measured over-run ratio. */
export const MISCALIBRATION_PENALTY = 0.5;

/**
 * Upper bounds (inclusive) of the latency buckets, ms: powers of √2 from 1 ms to 2^21 ms (about
 * 35 min), rounded; a last bucket takes everything longer. A quantile read from the histogram is
 * its bucket's upper bound, so it is exact within a factor √2 (and never under-states).
 */
export const LATENCY_BUCKET_BOUNDS_MS: readonly number[] = Object.freeze(
  Array.from({ length: 43 }, (_, k) => Math.round(Math.SQRT2 ** k)).concat([Infinity]),
);

/** The bucket index of a latency, ms. */
export function latencyBucket(ms: number): number {
  const value = Math.max(0, ms);
  for (let i = 0; i < LATENCY_BUCKET_BOUNDS_MS.length; i += 1) if (value <= LATENCY_BUCKET_BOUNDS_MS[i]!) return i;
  return LATENCY_BUCKET_BOUNDS_MS.length - 1;
}

/** One observation of one agent on one step, made by the orchestrator. */
export interface MeasurementSample {
  /** True for an accepted ok output with every declared artifact; false for an error output, a lapsed lease, a lost step. */
  readonly ok: boolean;
  /** The orchestrator's clock: the output's (or the lapse's) time minus the assignment's start. Absent for a step lost to the agent going away. */
  readonly ms?: number;
  /** What the agent promised for the duration: its bid's estMs (or its résumé p95 when it ran a step someone else bid). */
  readonly bidMs: number;
  /** The output's reported usage; absent when the agent reported nothing (lapsed lease, lost step). */
  readonly usd?: number;
  /** What the agent promised for the cost: its bid's estUsd (or its résumé price when it ran a step someone else bid). */
  readonly bidUsd: number;
}

/** A sample attributed to an agent: what a transition hands the orchestrator to record. */
export interface Measurement {
  readonly agentId: string;
  readonly sample: MeasurementSample;
}

/** An agent's measurement sums, as the registry stores them (each field only ever grows). */
export interface AgentMeasurements {
  /** Samples recorded. */
  readonly steps: number;
  readonly successes: number;
  /** Samples with a duration, and their Σ actual and Σ bid ms. */
  readonly timed: number;
  readonly msSum: number;
  readonly bidMsSum: number;
  /** Samples with a reported cost, and their Σ actual and Σ bid USD. */
  readonly costed: number;
  readonly usdSum: number;
  readonly bidUsdSum: number;
  /** Count per latency bucket index ({@link LATENCY_BUCKET_BOUNDS_MS}); missing buckets are 0. */
  readonly latency: Readonly<Record<number, number>>;
}

/** Sums with nothing recorded. */
export const NO_MEASUREMENTS: AgentMeasurements = Object.freeze({
  steps: 0, successes: 0, timed: 0, msSum: 0, bidMsSum: 0, costed: 0, usdSum: 0, bidUsdSum: 0, latency: Object.freeze({}),
});

/** The additions one sample makes to the sums: what an adapter applies atomically. */
export function increments(sample: MeasurementSample): { counters: Omit<AgentMeasurements, 'latency'>; bucket?: number } {
  const timed = sample.ms !== undefined && Number.isFinite(sample.ms);
  const costed = sample.usd !== undefined && Number.isFinite(sample.usd);
  return {
    counters: {
      steps: 1,
      successes: sample.ok ? 1 : 0,
      timed: timed ? 1 : 0,
      msSum: timed ? Math.max(0, sample.ms) : 0,
      bidMsSum: timed ? sample.bidMs : 0,
      costed: costed ? 1 : 0,
      usdSum: costed ? sample.usd : 0,
      bidUsdSum: costed ? sample.bidUsd : 0,
    },
    ...(timed ? { bucket: latencyBucket(sample.ms) } : {}),
  };
}

/** `sums` plus one sample (the in-memory registry and tests use this; adapters add the same increments). */
export function addSample(sums: AgentMeasurements, sample: MeasurementSample): AgentMeasurements {
  const { counters, bucket } = increments(sample);
  const latency = { ...sums.latency };
  if (bucket !== undefined) latency[bucket] = (latency[bucket] ?? 0) + 1;
  return {
    steps: sums.steps + counters.steps,
    successes: sums.successes + counters.successes,
    timed: sums.timed + counters.timed,
    msSum: sums.msSum + counters.msSum,
    bidMsSum: sums.bidMsSum + counters.bidMsSum,
    costed: sums.costed + counters.costed,
    usdSum: sums.usdSum + counters.usdSum,
    bidUsdSum: sums.bidUsdSum + counters.bidUsdSum,
    latency,
  };
}

/** The q-quantile (0 < q ≤ 1) of the latency histogram, ms (a bucket's upper bound), or undefined when empty. */
export function latencyQuantile(latency: Readonly<Record<number, number>>, q: number): number | undefined {
  const entries = Object.entries(latency).map(([k, n]) => [Number(k), n] as const).filter(([, n]) => n > 0).sort((a, b) => a[0] - b[0]);
  const total = entries.reduce((sum, [, n]) => sum + n, 0);
  if (total === 0) return undefined;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (const [bucket, n] of entries) {
    seen += n;
    if (seen >= rank) {
      const bound = LATENCY_BUCKET_BOUNDS_MS[bucket] ?? Infinity;
      // The overflow bucket has no upper bound: say at least its lower one.
      return bound === Infinity ? LATENCY_BUCKET_BOUNDS_MS[LATENCY_BUCKET_BOUNDS_MS.length - 2]! : bound;
    }
  }
  return undefined;
}

/** The figures derived from an agent's sums, raw and as planning and matching use them. */
export interface Reputation {
  readonly steps: number;
  /** Measured share of samples that succeeded, or undefined with no samples. */
  readonly successRate?: number;
  readonly p50Ms?: number;
  readonly p95Ms?: number;
  /** Mean reported cost per costed step, USD. */
  readonly meanUsd?: number;
  /** Mean measured duration per timed step, ms. */
  readonly meanMs?: number;
  /** Σ actual / Σ bid, raw (1 = bids are right, 10 = actuals are ten times the bids). */
  readonly usdRatio?: number;
  readonly msRatio?: number;
  /** What bids are multiplied by ({@link adjustFactor} of the shrunk ratio); 1 with no measurements. */
  readonly usdFactor: number;
  readonly msFactor: number;
}

/** Shrinks a measured ratio over `n` samples toward 1 with the prior weight. */
export function shrinkRatio(ratio: number | undefined, n: number, priorSteps = REPUTATION_PRIOR_STEPS): number {
  if (ratio === undefined || n <= 0) return 1;
  return (n * ratio + priorSteps) / (n + priorSteps);
}

/** f(r̂): 1 for an agent within its bids, r̂·(1 + λ(r̂ − 1)) for one that over-runs them. */
export function adjustFactor(shrunkRatio: number, penalty = MISCALIBRATION_PENALTY): number {
  return shrunkRatio <= 1 ? 1 : shrunkRatio * (1 + penalty * (shrunkRatio - 1));
}

/** Derives the figures from the sums. */
export function reputationOf(sums: AgentMeasurements | undefined): Reputation {
  const m = sums ?? NO_MEASUREMENTS;
  const usdRatio = m.costed > 0 && m.bidUsdSum > 0 ? m.usdSum / m.bidUsdSum : undefined;
  const msRatio = m.timed > 0 && m.bidMsSum > 0 ? m.msSum / m.bidMsSum : undefined;
  const p50 = latencyQuantile(m.latency, 0.5);
  const p95 = latencyQuantile(m.latency, 0.95);
  return {
    steps: m.steps,
    ...(m.steps > 0 ? { successRate: m.successes / m.steps } : {}),
    ...(p50 !== undefined ? { p50Ms: p50 } : {}),
    ...(p95 !== undefined ? { p95Ms: p95 } : {}),
    ...(m.costed > 0 ? { meanUsd: m.usdSum / m.costed } : {}),
    ...(m.timed > 0 ? { meanMs: m.msSum / m.timed } : {}),
    ...(usdRatio !== undefined ? { usdRatio } : {}),
    ...(msRatio !== undefined ? { msRatio } : {}),
    usdFactor: adjustFactor(shrinkRatio(usdRatio, m.costed)),
    msFactor: adjustFactor(shrinkRatio(msRatio, m.timed)),
  };
}

/** What the matcher ranks an agent by, and whether each figure was measured. */
export interface MatchFigures {
  readonly usd: number;
  readonly p95: number;
  readonly success: number;
  /** Orchestrator-measured samples behind the figures (0: self-reports only). */
  readonly measured: number;
  /** Where the figures came from. */
  readonly source: 'measured' | 'reported' | 'résumé';
}

/**
 * The matcher's view of an agent: with orchestrator measurements, the résumé price times the USD
 * factor, the shrunk p95 times the ms penalty and the shrunk success rate; without them, the
 * agent's own telemetry when it sent any; else the résumé with `unmeasuredSuccessRate`.
 */
export function matchFigures(agent: AgentRecord, unmeasuredSuccessRate: number, priorSteps = REPUTATION_PRIOR_STEPS): MatchFigures {
  const m = agent.measured;
  if (m !== undefined && m.steps > 0) {
    const rep = reputationOf(m);
    const claimedP95 = agent.resume.cost.p95_ms;
    const p95 = rep.p95Ms !== undefined ? (m.timed * rep.p95Ms + priorSteps * claimedP95) / (m.timed + priorSteps) : claimedP95;
    const msPenalty = rep.msFactor / Math.max(1, shrinkRatio(rep.msRatio, m.timed, priorSteps));
    return {
      usd: agent.resume.cost.usd * rep.usdFactor,
      p95: p95 * msPenalty,
      success: (m.successes + priorSteps * unmeasuredSuccessRate) / (m.steps + priorSteps),
      measured: m.steps,
      source: 'measured',
    };
  }
  const t = agent.telemetry;
  if (t !== undefined && t.executions > 0) return { usd: t.costUsd, p95: t.p95Ms, success: t.successRate, measured: 0, source: 'reported' };
  return { usd: agent.resume.cost.usd, p95: agent.resume.cost.p95_ms, success: unmeasuredSuccessRate, measured: 0, source: 'résumé' };
}

/**
 * Scales each bid by its agent's factors (agents with no measurements keep their bids) and says
 * which bids were scaled. Steps keep their ids, so the plan maps back to the raw bids.
 */
export function measuredBids(bids: readonly Bidder[], agents: ReadonlyMap<string, AgentRecord>): { bids: Bidder[]; notes: string[] } {
  const notes: string[] = [];
  const out = bids.map((bid) => {
    const m = agents.get(bid.agentId)?.measured;
    if (m === undefined || m.steps === 0) return bid;
    const rep = reputationOf(m);
    if (rep.usdFactor === 1 && rep.msFactor === 1) {
      notes.push(`bid of ${bid.agentId} taken as is: measured over ${m.steps} step(s), within its bids`);
      return bid;
    }
    notes.push(
      `bid of ${bid.agentId} scaled by measurements over ${m.steps} step(s): USD ×${fmt(rep.usdFactor)} (actual/bid ${fmt(rep.usdRatio)}), ms ×${fmt(rep.msFactor)} (actual/bid ${fmt(rep.msRatio)})`,
    );
    return { agentId: bid.agentId, steps: bid.steps.map((s) => ({ ...s, estUsd: s.estUsd * rep.usdFactor, estMs: s.estMs * rep.msFactor })) };
  });
  return { bids: out, notes };
}

/**
 * Plans with measured figures: scales the bids ({@link measuredBids}), plans with `plan`, and
 * gives the chosen steps back their raw bids (what the agent promised: budgets at run time, the
 * over-bid flag and the next measurement compare against it). The plan's estUsd/estMs stay the
 * expected (scaled) totals, and the notes say which bids were scaled.
 */
export function planWithMeasurements(input: PlanInput, plan: (input: PlanInput) => PlanOutcome): PlanOutcome {
  const { bids, notes } = measuredBids(input.bids, input.agents);
  const outcome = plan({ ...input, bids });
  if (!outcome.ok) return notes.length > 0 ? { ok: false, reasons: [...outcome.reasons, ...notes] } : outcome;
  const raw = new Map<string, { estUsd: number; estMs: number }>();
  for (const bid of input.bids) for (const s of bid.steps) raw.set(`${bid.agentId}\u0000${s.id}`, { estUsd: s.estUsd, estMs: s.estMs });
  const steps: PlannedStep[] = outcome.steps.map((s) => ({ ...s, ...(raw.get(`${s.proposedBy}\u0000${s.proposedStepId}`) ?? {}) }));
  return { ...outcome, steps, notes: [...outcome.notes, ...notes] };
}

function fmt(x: number | undefined): string {
  return x === undefined ? '–' : x.toFixed(2);
}
