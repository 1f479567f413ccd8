/**
 * The planner: merges every bid into one artifact graph and picks the cheapest derivation of the
 * wanted artifacts from the request's input, under the request's constraints (ARCHITECTURE §4.3).
 *
 * The merged graph is an AND/OR graph: an artifact is an OR-node over the steps producing it, a
 * step is an AND-node over the artifacts it consumes. Knuth's generalisation of Dijkstra's
 * algorithm (the "grammar problem": D. E. Knuth, "A generalization of Dijkstra's algorithm",
 * IPL 6(1), 1977) gives, for every artifact, its cheapest derivation in O(E log V). That cost
 * counts a sub-artifact once per use, so when two wanted artifacts could share a sub-derivation
 * it is only an upper bound; a bounded branch-and-bound over "which producer makes each needed
 * artifact" then finds the cheapest plan in which every step runs once (exact unless the node
 * limit stops it, which the notes then say).
 *
 * Constraints filter steps before any search (region, verified accreditation, data classes,
 * agent known to the registry); availability (online, draining, load) is matching's concern at
 * dispatch, where a step may wait for its agent. The deadline prunes steps that cannot finish in time, and the plan's
 * critical path must fit; the budget is checked against the cheapest plan found.
 */
import { requiredAccreditations } from './data-classes';
import { validateProposal } from './dag';
import type { AgentRecord } from './model';
import type { Bidder, PlanInput, PlanOutcome, PlannedStep } from './plan-types';
import type { Constraints, ProposedStep } from './schemas';

/** Most branch-and-bound nodes spent looking for a cheaper plan with shared sub-derivations. */
export const EXACT_SEARCH_NODE_LIMIT = 20_000;

/** Most items listed in one note or reason before "… and N more". */
const MAX_LISTED = 8;

/** Float tolerance for comparing USD sums. */
const EPS = 1e-9;

/** A bid step that did not pass the constraints, and why. */
interface Exclusion {
  readonly key: string;
  readonly reason: string;
}

/**
 * The merged AND/OR graph over interned artifact and step indices. Adjacency is kept in flat
 * typed arrays (compressed rows: the items of row i are `list[start[i]] … list[start[i + 1] - 1]`)
 * rather than one small array or object per step: a 1,000-bid task has 20,000 steps, and per-step
 * allocations both cost garbage collection and scatter the hot loops over memory.
 */
interface Graph {
  readonly names: string[];
  readonly index: Map<string, number>;
  /** Allowed steps, in bid order (bids sorted by agent id); excluded steps get no index. */
  readonly nS: number;
  readonly stepOf: readonly ProposedStep[];
  readonly agentOf: readonly string[];
  /** Per step: its own estUsd and estMs. */
  readonly usd: Float64Array;
  readonly ms: Float64Array;
  /** Per step: the artifacts it consumes / produces (deduplicated). */
  readonly consStart: Int32Array;
  readonly consList: Int32Array;
  readonly prodStart: Int32Array;
  readonly prodList: Int32Array;
  /** Per artifact: allowed producing / consuming steps, in step order. */
  readonly producerStart: Int32Array;
  readonly producerList: Int32Array;
  readonly consumerStart: Int32Array;
  readonly consumerList: Int32Array;
  /** Per artifact: producing steps excluded by constraints (undefined when none). */
  readonly excludedProducers: readonly (readonly Exclusion[] | undefined)[];
  readonly excluded: readonly Exclusion[];
  /** 1 for artifacts in the request's input. */
  readonly source: Uint8Array;
}

/** Result of one Knuth pass: the best producer of every artifact and the derivation figures. */
interface Derivation {
  /** Per artifact: best producing step, -1 for sources and underivable artifacts. */
  readonly best: Int32Array;
  /** Per artifact: USD of the derivation (sum, or max-path in bound mode); Infinity when underivable. */
  readonly usd: Float64Array;
  /** Per artifact: critical path of the derivation, ms. */
  readonly ms: Float64Array;
  /** Per step: USD and ms of the best derivation through it; Infinity when it never becomes runnable. */
  readonly stepUsd: Float64Array;
  readonly stepMs: Float64Array;
}

/** A complete plan: chosen steps and which of them makes each needed artifact. */
interface Solution {
  readonly steps: number[];
  /** Per artifact: the chosen producer, -1 when not needed or a source. */
  readonly assign: Int32Array;
  readonly usd: number;
  readonly ms: number;
}

/**
 * Picks the plan for a task, or says precisely why there is none. Deterministic: ties are
 * broken by lower critical path, then agent id, then step id. Bids that fail
 * {@link validateProposal} are ignored (noted), never fatal.
 */
export function planTask(input: PlanInput): PlanOutcome {
  const { request, now } = input;
  const constraints = request.constraints;
  const notes: string[] = [];
  const graph = buildGraph(input, notes);
  const wanted = [...new Set(request.want)].map((name) => graph.index.get(name)!);
  const needed = wanted.filter((a) => graph.source[a] === 0);

  const deadlineAt = constraints.deadline === undefined ? undefined : Date.parse(constraints.deadline);
  const timeLeft = deadlineAt === undefined ? Infinity : deadlineAt - now;
  if (constraints.deadline !== undefined && !(timeLeft > 0)) {
    return { ok: false, reasons: [`deadline ${constraints.deadline} has already passed (${fmtMs(-timeLeft)} ago)`] };
  }

  const allSteps = new Uint8Array(graph.nS).fill(1);
  let costD = knuth(graph, 'cost', allSteps);
  const underivable = needed.filter((a) => costD.usd[a] === Infinity);
  if (underivable.length > 0) return { ok: false, reasons: explainUnderivable(graph, costD, underivable) };

  if (needed.length === 0) {
    notes.unshift('every wanted artifact is in the task input: nothing to run');
    return { ok: true, steps: [], estUsd: 0, estMs: 0, notes };
  }

  let enabled = allSteps;
  let fastest: Solution | undefined;
  let timeD: Derivation | undefined;
  if (timeLeft !== Infinity) {
    const times = knuth(graph, 'time', allSteps);
    timeD = times;
    const fastestMs = Math.max(...needed.map((a) => times.ms[a]!));
    if (fastestMs > timeLeft) {
      return {
        ok: false,
        reasons: [`the fastest plan has a critical path of ${fmtMs(fastestMs)}, but only ${fmtMs(timeLeft)} are left before the deadline ${constraints.deadline ?? ''}`],
      };
    }
    enabled = new Uint8Array(graph.nS);
    let pruned = 0;
    for (let s = 0; s < graph.nS; s += 1) {
      if (times.stepMs[s]! <= timeLeft) enabled[s] = 1;
      else if (times.stepMs[s]! !== Infinity) pruned += 1;
    }
    if (pruned > 0) {
      notes.push(`dropped ${pruned} step(s) whose earliest finish is after the deadline (${fmtMs(timeLeft)} left)`);
      costD = knuth(graph, 'cost', enabled);
    }
    fastest = solutionFrom(graph, times, needed);
  }

  const perArtifact = solutionFrom(graph, costD, needed);
  const incumbent = perArtifact.ms <= timeLeft ? perArtifact : undefined;
  if (incumbent === undefined) {
    notes.push(`the per-artifact cheapest plan (${fmtUsd(perArtifact.usd)}) has a critical path of ${fmtMs(perArtifact.ms)}, over the ${fmtMs(timeLeft)} left before the deadline`);
  }
  const bound = knuth(graph, 'bound', enabled);
  const rootBound = Math.max(...needed.map((a) => bound.usd[a]!));
  let chosen: Solution;
  let searchComplete = true;
  if (incumbent !== undefined && incumbent.usd <= rootBound + EPS) {
    chosen = incumbent;
    notes.push(`cheapest derivation per artifact (Knuth) is optimal: ${fmtUsd(incumbent.usd)} equals the lower bound`);
  } else {
    const search = exactSearch(graph, costD, enabled, needed, timeLeft, incumbent);
    searchComplete = search.complete;
    const limitNote = search.complete ? '' : ` (search stopped at ${EXACT_SEARCH_NODE_LIMIT} nodes; a cheaper plan may exist)`;
    if (search.best !== undefined && (incumbent === undefined || search.best.usd < incumbent.usd - EPS)) {
      chosen = search.best;
      notes.push(
        incumbent === undefined
          ? `chose the cheapest plan that meets the deadline: ${fmtUsd(chosen.usd)}, critical path ${fmtMs(chosen.ms)}${limitNote}`
          : `sharing sub-artifacts lowers the cost from ${fmtUsd(incumbent.usd)} (cheapest per artifact) to ${fmtUsd(chosen.usd)}${limitNote}`,
      );
    } else if (incumbent !== undefined) {
      chosen = incumbent;
      notes.push(`cheapest derivation per artifact (Knuth), confirmed by branch-and-bound${limitNote}`);
    } else {
      // The search ran out of nodes before finding any plan that fits; the fastest one does fit.
      chosen = fastest!;
      notes.push(`chose the fastest plan (critical path ${fmtMs(chosen.ms)}, ${fmtUsd(chosen.usd)}); no cheaper plan meeting the deadline was found${limitNote}`);
    }
  }

  if (constraints.maxUsd !== undefined && chosen.usd > constraints.maxUsd + EPS) {
    const which = timeLeft === Infinity ? 'the cheapest plan' : 'the cheapest plan that meets the deadline';
    const caveat = searchComplete ? '' : ' (search was bounded; a cheaper plan may exist)';
    return { ok: false, reasons: [`${which} costs ${fmtUsd(chosen.usd)}, over the budget of ${fmtUsd(constraints.maxUsd)}${caveat}`] };
  }
  if (timeLeft !== Infinity) notes.push(`critical path ${fmtMs(chosen.ms)} fits the ${fmtMs(timeLeft)} left before the deadline`);

  const steps = orderAndRenumber(graph, chosen);
  notes.unshift(`plan: ${steps.length} step(s), ${fmtUsd(chosen.usd)}, critical path ${fmtMs(chosen.ms)}`);
  notes.push(...explainChoices(graph, costD, timeD, enabled, chosen, timeLeft));
  return { ok: true, steps, estUsd: chosen.usd, estMs: chosen.ms, notes };
}

// ---------------------------------------------------------------------------------------------
// Merging and filtering

/**
 * Interns artifact names and collects the graph's rows while the bids are read, into arrays sized
 * up front from the bids (no regrowth, no per-step allocation).
 */
class GraphBuilder {
  readonly names: string[] = [];
  readonly index = new Map<string, number>();
  readonly excludedProducers: (Exclusion[] | undefined)[] = [];
  readonly excluded: Exclusion[] = [];
  readonly stepOf: ProposedStep[] = [];
  readonly agentOf: string[] = [];
  private readonly usd: Float64Array;
  private readonly ms: Float64Array;
  private readonly consStart: Int32Array;
  private consList: Int32Array;
  private readonly prodStart: Int32Array;
  private prodList: Int32Array;
  private nS = 0;
  private nCons = 0;
  private nProd = 0;

  constructor(bids: readonly Bidder[]) {
    // Only the step counts are read here: a first pass over every step object would pull the whole
    // input through the caches once more before the per-bid pass.
    let steps = 0;
    for (const bid of bids) steps += bid.steps.length;
    this.usd = new Float64Array(steps);
    this.ms = new Float64Array(steps);
    this.consStart = new Int32Array(steps + 1);
    this.prodStart = new Int32Array(steps + 1);
    // Most steps consume and produce one or two artifacts; the lists double when a bid needs more.
    this.consList = new Int32Array(2 * steps + 8);
    this.prodList = new Int32Array(2 * steps + 8);
  }

  intern(name: string): number {
    let i = this.index.get(name);
    if (i === undefined) {
      i = this.names.length;
      this.index.set(name, i);
      this.names.push(name);
      this.excludedProducers.push(undefined);
    }
    return i;
  }

  /** `list` with room for `more` items after `used`, doubled when it has not. */
  private static room(list: Int32Array, used: number, more: number): Int32Array {
    if (used + more <= list.length) return list;
    const grown = new Int32Array(Math.max(2 * list.length, used + more));
    grown.set(list.subarray(0, used));
    return grown;
  }

  /** Writes the interned indices of `names` into `list` from `from`, without duplicates; returns the new end. */
  private internInto(list: Int32Array, from: number, names: readonly string[]): number {
    let end = from;
    for (const name of names) {
      const a = this.intern(name);
      let dup = false;
      for (let k = from; k < end; k += 1) if (list[k] === a) dup = true;
      if (!dup) {
        list[end] = a;
        end += 1;
      }
    }
    return end;
  }

  exclude(agentId: string, step: ProposedStep, reason: string): void {
    const exclusion = { key: `${agentId}/${step.id}`, reason };
    this.excluded.push(exclusion);
    // Produced artifacts are interned even for excluded steps: "produced only by excluded steps" is a reason.
    const scratch = new Int32Array(step.produces.length);
    const end = this.internInto(scratch, 0, step.produces);
    for (let k = 0; k < end; k += 1) (this.excludedProducers[scratch[k]!] ??= []).push(exclusion);
  }

  allow(agentId: string, step: ProposedStep): void {
    const s = this.nS;
    this.prodList = GraphBuilder.room(this.prodList, this.nProd, step.produces.length);
    this.consList = GraphBuilder.room(this.consList, this.nCons, step.consumes.length);
    this.nProd = this.internInto(this.prodList, this.nProd, step.produces);
    this.prodStart[s + 1] = this.nProd;
    this.nCons = this.internInto(this.consList, this.nCons, step.consumes);
    this.consStart[s + 1] = this.nCons;
    this.stepOf.push(step);
    this.agentOf.push(agentId);
    this.usd[s] = step.estUsd;
    this.ms[s] = step.estMs;
    this.nS = s + 1;
  }

  finish(inputs: readonly string[]): Graph {
    const nA = this.names.length;
    const nS = this.nS;
    const consStart = this.consStart.subarray(0, nS + 1);
    const consList = this.consList.subarray(0, this.nCons);
    const prodStart = this.prodStart.subarray(0, nS + 1);
    const prodList = this.prodList.subarray(0, this.nProd);
    const [producerStart, producerList] = transpose(nA, nS, prodStart, prodList);
    const [consumerStart, consumerList] = transpose(nA, nS, consStart, consList);
    const source = new Uint8Array(nA);
    for (const name of inputs) source[this.index.get(name)!] = 1;
    return {
      names: this.names, index: this.index, nS, stepOf: this.stepOf, agentOf: this.agentOf,
      usd: this.usd.subarray(0, nS), ms: this.ms.subarray(0, nS),
      consStart, consList, prodStart, prodList, producerStart, producerList, consumerStart, consumerList,
      excludedProducers: this.excludedProducers, excluded: this.excluded, source,
    };
  }
}

/** Step → artifact rows turned into artifact → step rows by counting sort (steps stay in ascending order). */
function transpose(nA: number, nS: number, start: Int32Array, list: Int32Array): [Int32Array, Int32Array] {
  const outStart = new Int32Array(nA + 1);
  for (let k = 0; k < list.length; k += 1) outStart[list[k]! + 1]! += 1;
  for (let a = 0; a < nA; a += 1) outStart[a + 1]! += outStart[a]!;
  const fill = outStart.slice(0, nA);
  const out = new Int32Array(list.length);
  for (let s = 0; s < nS; s += 1) {
    for (let k = start[s]!; k < start[s + 1]!; k += 1) {
      const a = list[k]!;
      out[fill[a]!] = s;
      fill[a]! += 1;
    }
  }
  return [outStart, out];
}

function buildGraph(input: PlanInput, notes: string[]): Graph {
  const { request, agents } = input;
  const b = new GraphBuilder(input.bids);
  const inputs = Object.keys(request.input);
  for (const name of inputs) b.intern(name);
  for (const name of request.want) b.intern(name);
  const bids = [...input.bids].sort((x, y) => compareStrings(x.agentId, y.agentId));
  const seen = new Set<string>();
  for (const bid of bids) {
    if (seen.has(bid.agentId)) {
      notes.push(`ignored a second bid from ${bid.agentId}`);
      continue;
    }
    seen.add(bid.agentId);
    let bidProblem: string | undefined;
    try {
      validateProposal(bid.steps);
    } catch (err) {
      bidProblem = `invalid proposal: ${(err as Error).message}`;
      notes.push(`ignored the bid from ${bid.agentId}: ${(err as Error).message}`);
    }
    const agent = agents.get(bid.agentId);
    const agentProblem = bidProblem ?? agentExclusion(agent, request.constraints);
    // Most steps carry no data classes of their own: judge the agent once for all of them.
    const plainProblem = agentProblem ?? stepExclusion(agent!, {}, request.constraints);
    for (const step of bid.steps) {
      const ownClasses = step.dataClasses !== undefined && step.dataClasses.length > 0;
      const reason = agentProblem ?? (ownClasses ? stepExclusion(agent!, step, request.constraints) : plainProblem);
      if (reason !== undefined) b.exclude(bid.agentId, step, reason);
      else b.allow(bid.agentId, step);
    }
  }
  const g = b.finish(inputs);
  if (g.excluded.length > 0) {
    notes.push(`excluded ${g.excluded.length} proposed step(s) by constraints: ${listedOf(g.excluded, describeExclusion)}`);
  }
  return g;
}

function describeExclusion(e: Exclusion): string {
  return `${e.key} (${e.reason})`;
}

/** A step's "agent/step" key, as used in notes and as the last tie-break. */
function keyOf(g: Graph, s: number): string {
  return `${g.agentOf[s]!}/${g.stepOf[s]!.id}`;
}

/** True when s produces artifact a. */
function producesArtifact(g: Graph, s: number, a: number): boolean {
  for (let k = g.prodStart[s]!; k < g.prodStart[s + 1]!; k += 1) if (g.prodList[k] === a) return true;
  return false;
}

/**
 * Why every step of this agent is excluded, or undefined when the agent itself is acceptable.
 * Only what cannot change while the task runs counts: whether the agent is online, draining or
 * busy right now is for matching to weigh when the step is dispatched (a broker restart marks
 * every agent offline for a moment).
 */
function agentExclusion(agent: AgentRecord | undefined, constraints: Constraints): string | undefined {
  if (agent === undefined) return 'agent not in the registry';
  const regions = allowedRegions(constraints);
  if (regions !== undefined && !regions.includes(agent.resume.region)) {
    return `region ${agent.resume.region} not in [${regions.join(', ')}]`;
  }
  return undefined;
}

/** Why this step is excluded (data classes and accreditations, which depend on the step), if it is. */
function stepExclusion(agent: AgentRecord, step: Pick<ProposedStep, 'dataClasses'>, constraints: Constraints): string | undefined {
  const classes = neededDataClasses(constraints, step.dataClasses);
  const handled = agent.resume.dataClasses ?? [];
  const lacking = classes.filter((c) => !handled.includes(c));
  if (lacking.length > 0) return `résumé lacks data class ${lacking.join(', ')}`;
  const missing = neededAccreditations(constraints, classes).filter((a) => !agent.verifiedAccredit.includes(a));
  if (missing.length > 0) {
    const claimed = missing.filter((a) => agent.unverifiedAccredit.includes(a));
    const suffix = claimed.length > 0 ? ` (${claimed.join(', ')} claimed but not verified)` : '';
    return `missing verified accreditation ${missing.join(', ')}${suffix}`;
  }
  return undefined;
}

/** The regions a constraint allows, or undefined when any region will do. */
export function allowedRegions(constraints: Constraints): readonly string[] | undefined {
  const { region } = constraints;
  if (region === undefined) return undefined;
  return typeof region === 'string' ? [region] : region;
}

/** The data classes a step handles: the task's plus the step's own. */
export function neededDataClasses(constraints: Constraints, stepClasses: readonly string[] = []): string[] {
  return [...new Set([...(constraints.dataClasses ?? []), ...stepClasses])];
}

/** Accreditations an agent must hold (verified) for a step: the task's plus those its data classes imply. */
export function neededAccreditations(constraints: Constraints, dataClasses: readonly string[]): string[] {
  return [...new Set([...(constraints.accredit ?? []), ...requiredAccreditations(dataClasses)])];
}

// ---------------------------------------------------------------------------------------------
// Knuth's algorithm

/**
 * `cost`: minimise USD (sum over the derivation tree), then critical path.
 * `time`: minimise critical path, then USD.
 * `bound`: minimise USD along the most expensive single path: a lower bound on any plan's cost.
 */
type Mode = 'cost' | 'time' | 'bound';

function knuth(g: Graph, mode: Mode, enabled: Uint8Array): Derivation {
  const nA = g.names.length;
  const nS = g.nS;
  const best = new Int32Array(nA).fill(-1);
  const usd = new Float64Array(nA).fill(Infinity);
  const ms = new Float64Array(nA).fill(Infinity);
  const stepUsd = new Float64Array(nS).fill(Infinity);
  const stepMs = new Float64Array(nS).fill(Infinity);
  const done = new Uint8Array(nA);
  const remaining = new Int32Array(nS);
  const heap = new KeyHeap();
  const timeFirst = mode === 'time';
  const bound = mode === 'bound';
  const { consStart, consList, prodStart, prodList } = g;

  /** Step s's derivation beats step t's (both fired): by the mode's two keys, then agent id, then step id. */
  const better = (s: number, t: number): boolean => {
    const a1 = timeFirst ? stepMs[s]! : stepUsd[s]!;
    const b1 = timeFirst ? stepMs[t]! : stepUsd[t]!;
    if (a1 !== b1) return a1 < b1;
    const a2 = timeFirst ? stepUsd[s]! : stepMs[s]!;
    const b2 = timeFirst ? stepUsd[t]! : stepMs[t]!;
    if (a2 !== b2) return a2 < b2;
    const x = g.agentOf[s]!;
    const y = g.agentOf[t]!;
    return x !== y ? x < y : g.stepOf[s]!.id < g.stepOf[t]!.id;
  };
  const fire = (s: number): void => {
    let u = g.usd[s]!;
    let m = 0;
    let maxU = 0;
    for (let k = consStart[s]!; k < consStart[s + 1]!; k += 1) {
      const a = consList[k]!;
      if (bound) maxU = Math.max(maxU, usd[a]!);
      else u += usd[a]!;
      m = Math.max(m, ms[a]!);
    }
    const su = bound ? u + maxU : u;
    const sm = g.ms[s]! + m;
    stepUsd[s] = su;
    stepMs[s] = sm;
    for (let k = prodStart[s]!; k < prodStart[s + 1]!; k += 1) {
      const a = prodList[k]!;
      if (done[a] === 1) continue;
      const current = best[a]!;
      if (current === -1 || better(s, current)) {
        best[a] = s;
        usd[a] = su;
        ms[a] = sm;
        if (timeFirst) heap.push(sm, su, a);
        else heap.push(su, sm, a);
      }
    }
  };

  // Sources are final before anything fires, so no step can "improve" on a task input.
  for (let a = 0; a < nA; a += 1) {
    if (g.source[a] === 1) {
      usd[a] = 0;
      ms[a] = 0;
      done[a] = 1;
    }
  }
  for (let s = 0; s < nS; s += 1) {
    if (enabled[s] !== 1) continue;
    let open = 0;
    for (let k = consStart[s]!; k < consStart[s + 1]!; k += 1) if (g.source[consList[k]!] === 0) open += 1;
    remaining[s] = open;
    if (open === 0) fire(s);
  }
  while (heap.size > 0) {
    const a = heap.pop();
    if (done[a] === 1) continue;
    done[a] = 1;
    for (let k = g.consumerStart[a]!; k < g.consumerStart[a + 1]!; k += 1) {
      const s = g.consumerList[k]!;
      if (enabled[s] !== 1) continue;
      remaining[s]! -= 1;
      if (remaining[s] === 0) fire(s);
    }
  }
  return { best, usd, ms, stepUsd, stepMs };
}

/** The plan made of each needed artifact's best producer (shared steps counted once). */
function solutionFrom(g: Graph, d: Derivation, needed: readonly number[]): Solution {
  const assign = new Int32Array(g.names.length).fill(-1);
  const chosen = new Uint8Array(g.nS);
  const steps: number[] = [];
  const stack = [...needed];
  while (stack.length > 0) {
    const a = stack.pop()!;
    if (g.source[a] === 1 || assign[a] !== -1) continue;
    const s = d.best[a]!;
    assign[a] = s;
    if (chosen[s] === 1) continue;
    chosen[s] = 1;
    steps.push(s);
    for (let k = g.consStart[s]!; k < g.consStart[s + 1]!; k += 1) stack.push(g.consList[k]!);
  }
  return finishSolution(g, steps, assign);
}

function finishSolution(g: Graph, steps: number[], assign: Int32Array): Solution {
  let usd = 0;
  for (const s of steps) usd += g.usd[s]!;
  return { steps, assign, usd, ms: criticalPath(g, steps, assign) };
}

/** Longest estMs path through the chosen steps, following the chosen producer of each artifact. */
function criticalPath(g: Graph, steps: readonly number[], assign: Int32Array): number {
  const finish = new Map<number, number>();
  const visit = (s: number): number => {
    const known = finish.get(s);
    if (known !== undefined) return known;
    let start = 0;
    for (let k = g.consStart[s]!; k < g.consStart[s + 1]!; k += 1) {
      const p = assign[g.consList[k]!]!;
      if (p !== -1) start = Math.max(start, visit(p));
    }
    const f = start + g.ms[s]!;
    finish.set(s, f);
    return f;
  };
  let longest = 0;
  for (const s of steps) longest = Math.max(longest, visit(s));
  return longest;
}

// ---------------------------------------------------------------------------------------------
// Exact search

/**
 * Branch-and-bound over "which producer makes each needed artifact", so a step shared by
 * several consumers is paid once. Producers are tried in Knuth order (already chosen ones
 * first), the assignment graph is kept acyclic incrementally, and a branch is cut when its cost
 * plus the dearest still-unpaid pending artifact cannot beat the best plan so far.
 */
function exactSearch(
  g: Graph, d: Derivation, enabled: Uint8Array, needed: readonly number[], timeLeft: number, incumbent: Solution | undefined,
): { best: Solution | undefined; complete: boolean } {
  const nA = g.names.length;
  const nS = g.nS;
  const own = (s: number): number => g.usd[s]!;
  const order = (s: number, t: number): number =>
    own(s) - own(t) || d.stepUsd[s]! - d.stepUsd[t]! || d.stepMs[s]! - d.stepMs[t]! || compareStrings(keyOf(g, s), keyOf(g, t));
  // Built on first need (most artifacts never become pending), in order of own cost, so the loop over
  // fresh producers can stop at the first one that cannot beat the best plan. That loop usually stops
  // after a handful, so the order is produced lazily from a heap: O(P + k log P) for the k producers
  // looked at, instead of sorting all P producers of an artifact (P grows with the number of bids).
  const optionCache: (LazySorted | undefined)[] = new Array<LazySorted | undefined>(nA);
  const minUsd = new Float64Array(nA).fill(Infinity);
  // The least a fresh step can charge per artifact it makes: a step making k pending artifacts pays for all k.
  const minShare = new Float64Array(nA).fill(Infinity);
  const options = (a: number): LazySorted => {
    let list = optionCache[a];
    if (list === undefined) {
      const pool: number[] = [];
      let cheapest = Infinity;
      let share = Infinity;
      for (let k = g.producerStart[a]!; k < g.producerStart[a + 1]!; k += 1) {
        const s = g.producerList[k]!;
        if (enabled[s] !== 1 || d.stepUsd[s] === Infinity) continue;
        pool.push(s);
        cheapest = Math.min(cheapest, own(s));
        share = Math.min(share, own(s) / (g.prodStart[s + 1]! - g.prodStart[s]!));
      }
      list = new LazySorted(pool, order);
      optionCache[a] = list;
      minUsd[a] = cheapest;
      minShare[a] = share;
    }
    return list;
  };

  const assign = new Int32Array(nA).fill(-1);
  const uses = new Int32Array(nS);
  const chosenProducers = new Int32Array(nA);
  const inPending = new Uint8Array(nA);
  const pending: number[] = [];
  const chosenSteps: number[] = [];
  let best = incumbent;
  let bestUsd = incumbent?.usd ?? Infinity;
  let nodes = 0;
  let complete = true;

  const addPending = (a: number): void => {
    if (g.source[a] === 1 || assign[a] !== -1 || inPending[a] === 1) return;
    options(a);
    inPending[a] = 1;
    pending.push(a);
  };
  // Every pending artifact no chosen step makes needs a fresh step: at least its dearest cheapest
  // producer, and at least the sum of per-artifact shares (a fresh step's cost split over what it makes).
  const lowerBound = (): number => {
    let dearest = 0;
    let shares = 0;
    for (const a of pending) {
      if (chosenProducers[a] !== 0) continue;
      dearest = Math.max(dearest, minUsd[a]!);
      shares += minShare[a]!;
    }
    return Math.max(dearest, shares);
  };
  // True when step s already (transitively) consumes artifact target: assigning target to s would close a cycle.
  const visitedAt = new Int32Array(nA);
  const stack: number[] = [];
  let visit = 0;
  const dependsOn = (s: number, target: number): boolean => {
    visit += 1;
    stack.length = 0;
    for (let k = g.consStart[s]!; k < g.consStart[s + 1]!; k += 1) stack.push(g.consList[k]!);
    while (stack.length > 0) {
      const a = stack.pop()!;
      if (a === target) return true;
      if (visitedAt[a] === visit) continue;
      visitedAt[a] = visit;
      const p = assign[a]!;
      if (p !== -1) for (let k = g.consStart[p]!; k < g.consStart[p + 1]!; k += 1) stack.push(g.consList[k]!);
    }
    return false;
  };

  const branch = (a: number, s: number, usd: number): void => {
    if (dependsOn(s, a)) return;
    const fresh = uses[s] === 0;
    const next = fresh ? usd + own(s) : usd;
    assign[a] = s;
    uses[s]! += 1;
    const before = pending.length;
    if (fresh) {
      chosenSteps.push(s);
      for (let k = g.prodStart[s]!; k < g.prodStart[s + 1]!; k += 1) chosenProducers[g.prodList[k]!]! += 1;
      for (let k = g.consStart[s]!; k < g.consStart[s + 1]!; k += 1) addPending(g.consList[k]!);
    }
    if (next + lowerBound() < bestUsd - EPS) dfs(next);
    while (pending.length > before) inPending[pending.pop()!] = 0;
    if (fresh) {
      chosenSteps.pop();
      for (let k = g.prodStart[s]!; k < g.prodStart[s + 1]!; k += 1) chosenProducers[g.prodList[k]!]! -= 1;
    }
    uses[s]! -= 1;
    assign[a] = -1;
  };

  function dfs(usd: number): void {
    nodes += 1;
    if (nodes > EXACT_SEARCH_NODE_LIMIT) {
      complete = false;
      return;
    }
    if (pending.length === 0) {
      if (usd < bestUsd - EPS) {
        const candidate = finishSolution(g, [...chosenSteps], Int32Array.from(assign));
        if (candidate.ms <= timeLeft) {
          best = candidate;
          bestUsd = candidate.usd;
        }
      }
      return;
    }
    // Branch on the pending artifact with the fewest producers: fail early, branch narrowly.
    let pick = 0;
    for (let i = 1; i < pending.length; i += 1) {
      if (options(pending[i]!).length < options(pending[pick]!).length) pick = i;
    }
    const a = pending[pick]!;
    const bound = lowerBound();
    pending[pick] = pending[pending.length - 1]!;
    pending.pop();
    inPending[a] = 0;
    const producers = options(a);
    // Producers already in the plan first (free), then fresh ones by own cost.
    if (chosenProducers[a]! > 0) {
      for (const s of [...chosenSteps]) if (complete && producesArtifact(g, s, a)) branch(a, s, usd);
    }
    for (let i = 0; ; i += 1) {
      const s = producers.at(i);
      if (s === -1 || !complete || usd + Math.max(own(s), bound) >= bestUsd - EPS) break;
      if (uses[s] === 0) branch(a, s, usd);
    }
    pending.push(a);
    // Restore the exact order: the caller undoes its additions by truncating pending to its old length.
    const last = pending.length - 1;
    [pending[pick], pending[last]] = [pending[last]!, pending[pick]!];
    inPending[a] = 1;
  }

  for (const a of needed) addPending(a);
  dfs(0);
  return { best, complete };
}

// ---------------------------------------------------------------------------------------------
// Output

/** Topological order over the chosen producer of each artifact, renumbered s1..sN. */
function orderAndRenumber(g: Graph, sol: Solution): PlannedStep[] {
  const byKey = [...sol.steps].sort((s, t) => compareStrings(keyOf(g, s), keyOf(g, t)));
  const position = new Map(byKey.map((s, i) => [s, i]));
  const indegree = new Int32Array(byKey.length);
  const successors: number[][] = byKey.map(() => []);
  byKey.forEach((s, i) => {
    const preds = new Set<number>();
    for (let k = g.consStart[s]!; k < g.consStart[s + 1]!; k += 1) {
      const p = sol.assign[g.consList[k]!]!;
      if (p !== -1) preds.add(position.get(p)!);
    }
    for (const p of preds) {
      successors[p]!.push(i);
      indegree[i]! += 1;
    }
  });
  const ready: number[] = [];
  for (let i = 0; i < byKey.length; i += 1) if (indegree[i] === 0) ready.push(i);
  const out: PlannedStep[] = [];
  while (ready.length > 0) {
    ready.sort((x, y) => y - x);
    const i = ready.pop()!;
    const s = byKey[i]!;
    const step = g.stepOf[s]!;
    out.push({ ...step, id: `s${out.length + 1}`, proposedBy: g.agentOf[s]!, proposedStepId: step.id });
    for (const n of successors[i]!) {
      indegree[n]! -= 1;
      if (indegree[n] === 0) ready.push(n);
    }
  }
  return out;
}

/**
 * One note per produced artifact: who makes it, and why each alternative lost. Only the first
 * few alternatives are listed (the rest are counted), so only those are formatted: with
 * hundreds of producers per artifact, formatting every one would cost more than the search.
 */
function explainChoices(g: Graph, costD: Derivation, timeD: Derivation | undefined, enabled: Uint8Array, sol: Solution, timeLeft: number): string[] {
  const notes: string[] = [];
  const artifacts: number[] = [];
  for (let a = 0; a < sol.assign.length; a += 1) if (sol.assign[a] !== -1) artifacts.push(a);
  artifacts.sort((x, y) => compareStrings(g.names[x]!, g.names[y]!));
  for (const a of artifacts) {
    const s = sol.assign[a]!;
    const alternatives = new Listing();
    for (let k = g.producerStart[a]!; k < g.producerStart[a + 1]!; k += 1) {
      const p = g.producerList[k]!;
      if (p === s) continue;
      if (alternatives.full) {
        alternatives.skip();
        continue;
      }
      const key = keyOf(g, p);
      if (timeD !== undefined && enabled[p] !== 1 && timeD.stepMs[p] !== Infinity) {
        alternatives.add(`${key} (earliest finish ${fmtMs(timeD.stepMs[p]!)}, after the ${fmtMs(timeLeft)} left)`);
      } else if (costD.stepUsd[p] === Infinity) {
        alternatives.add(`${key} (its inputs cannot be derived)`);
      } else {
        alternatives.add(`${key} (derivation ${fmtUsd(costD.stepUsd[p]!)}, ${fmtMs(costD.stepMs[p]!)})`);
      }
    }
    for (const e of g.excludedProducers[a] ?? []) {
      if (alternatives.full) alternatives.skip();
      else alternatives.add(`${e.key} (excluded: ${e.reason})`);
    }
    const head = `artifact '${g.names[a]}' from ${keyOf(g, s)} (${fmtUsd(g.usd[s]!)}, ${fmtMs(g.ms[s]!)})`;
    notes.push(alternatives.count === 0 ? `${head}; no alternative` : `${head}; rejected ${alternatives.text()}`);
  }
  return notes;
}

/** Specific reasons why each of `targets` cannot be derived, following missing inputs down. */
function explainUnderivable(g: Graph, d: Derivation, targets: readonly number[]): string[] {
  const reasons: string[] = [];
  const seen = new Set<number>();
  const visit = (a: number): void => {
    if (seen.has(a)) return;
    seen.add(a);
    const name = g.names[a]!;
    const producers = Array.from(g.producerList.subarray(g.producerStart[a], g.producerStart[a + 1]));
    const excluded = g.excludedProducers[a] ?? [];
    if (producers.length === 0 && excluded.length === 0) {
      reasons.push(`artifact '${name}' has no producer and is not in the task input`);
      return;
    }
    if (producers.length === 0) {
      reasons.push(`artifact '${name}' is produced only by steps excluded by constraints: ${listedOf(excluded, describeExclusion)}`);
      return;
    }
    const blocked: string[] = [];
    const missing = new Set<number>();
    for (const s of producers) {
      const consumes = Array.from(g.consList.subarray(g.consStart[s], g.consStart[s + 1]));
      const lacking = consumes.filter((c) => d.usd[c] === Infinity);
      for (const c of lacking) missing.add(c);
      blocked.push(`${keyOf(g, s)} needs ${lacking.map((c) => `'${g.names[c]}'`).join(', ')}`);
    }
    const also = excluded.length > 0 ? `; excluded by constraints: ${listedOf(excluded, describeExclusion)}` : '';
    reasons.push(`artifact '${name}' cannot be derived: ${listed(blocked)}${also}`);
    for (const c of missing) visit(c);
  };
  for (const a of targets) visit(a);
  return reasons;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function listed(items: readonly string[]): string {
  if (items.length <= MAX_LISTED) return items.join(', ');
  return `${items.slice(0, MAX_LISTED).join(', ')}, … and ${items.length - MAX_LISTED} more`;
}

/** `listed(items.map(describe))`, describing only the items that are shown. */
function listedOf<T>(items: readonly T[], describe: (item: T) => string): string {
  const shown = items.slice(0, MAX_LISTED).map(describe).join(', ');
  return items.length <= MAX_LISTED ? shown : `${shown}, … and ${items.length - MAX_LISTED} more`;
}

/** Builds a {@link listed} text incrementally: callers format an item only while it would be shown. */
class Listing {
  private readonly shown: string[] = [];
  private skipped = 0;

  /** True once further items would only be counted. */
  get full(): boolean {
    return this.shown.length >= MAX_LISTED;
  }

  get count(): number {
    return this.shown.length + this.skipped;
  }

  add(item: string): void {
    this.shown.push(item);
  }

  skip(): void {
    this.skipped += 1;
  }

  text(): string {
    return this.skipped === 0 ? this.shown.join(', ') : `${this.shown.join(', ')}, … and ${this.skipped} more`;
  }
}

function fmtUsd(usd: number): string {
  return `$${Number(usd.toFixed(6))}`;
}

function fmtMs(ms: number): string {
  return `${Math.round(ms)} ms`;
}

/** A binary min-heap of ids keyed by two numbers, lexicographically; ties go to the lower id. */
class KeyHeap {
  private readonly k1: number[] = [];
  private readonly k2: number[] = [];
  private readonly ids: number[] = [];

  get size(): number {
    return this.ids.length;
  }

  push(key1: number, key2: number, id: number): void {
    let i = this.ids.length;
    this.k1.push(key1);
    this.k2.push(key2);
    this.ids.push(id);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(key1, key2, id, parent)) break;
      this.move(parent, i);
      i = parent;
    }
    this.k1[i] = key1;
    this.k2[i] = key2;
    this.ids[i] = id;
  }

  pop(): number {
    const top = this.ids[0]!;
    const key1 = this.k1.pop()!;
    const key2 = this.k2.pop()!;
    const id = this.ids.pop()!;
    const n = this.ids.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && this.less(this.k1[r]!, this.k2[r]!, this.ids[r]!, l) ? r : l;
        if (!this.less(this.k1[c]!, this.k2[c]!, this.ids[c]!, -1, key1, key2, id)) break;
        this.move(c, i);
        i = c;
      }
      this.k1[i] = key1;
      this.k2[i] = key2;
      this.ids[i] = id;
    }
    return top;
  }

  /** (a1, a2, aId) < the entry at `slot`, or < (b1, b2, bId) when slot is -1. */
  private less(a1: number, a2: number, aId: number, slot: number, b1 = this.k1[slot]!, b2 = this.k2[slot]!, bId = this.ids[slot]!): boolean {
    if (a1 !== b1) return a1 < b1;
    if (a2 !== b2) return a2 < b2;
    return aId < bId;
  }

  private move(from: number, to: number): void {
    this.k1[to] = this.k1[from]!;
    this.k2[to] = this.k2[from]!;
    this.ids[to] = this.ids[from]!;
  }
}

/**
 * The items in ascending `compare` order, produced on demand: heapified in O(n), then each
 * further item costs O(log n). For a consumer that usually stops after the first few items.
 */
class LazySorted {
  private readonly heap: number[];
  private readonly sorted: number[] = [];

  constructor(items: number[], private readonly compare: (a: number, b: number) => number) {
    this.heap = items;
    for (let i = (items.length >> 1) - 1; i >= 0; i -= 1) this.siftDown(i);
  }

  /** How many items there are in all. */
  get length(): number {
    return this.sorted.length + this.heap.length;
  }

  /** The i-th smallest item, or -1 past the end. */
  at(i: number): number {
    while (this.sorted.length <= i && this.heap.length > 0) this.sorted.push(this.popMin());
    return i < this.sorted.length ? this.sorted[i]! : -1;
  }

  private popMin(): number {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      this.siftDown(0);
    }
    return top;
  }

  private siftDown(from: number): void {
    const h = this.heap;
    const n = h.length;
    const item = h[from]!;
    let i = from;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && this.compare(h[r]!, h[l]!) < 0 ? r : l;
      if (this.compare(h[c]!, item) >= 0) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = item;
  }
}
