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
 * agent known and online). The deadline prunes steps that cannot finish in time, and the plan's
 * critical path must fit; the budget is checked against the cheapest plan found.
 */
import { requiredAccreditations } from './data-classes';
import { validateProposal } from './dag';
import type { AgentRecord } from './model';
import type { PlanInput, PlanOutcome, PlannedStep } from './plan-types';
import type { Constraints, ProposedStep } from './schemas';

/** Most branch-and-bound nodes spent looking for a cheaper plan with shared sub-derivations. */
export const EXACT_SEARCH_NODE_LIMIT = 20_000;

/** Most items listed in one note or reason before "… and N more". */
const MAX_LISTED = 8;

/** Float tolerance for comparing USD sums. */
const EPS = 1e-9;

/** A bid step that passed the constraints. */
interface Candidate {
  readonly key: string;
  readonly agentId: string;
  readonly step: ProposedStep;
  readonly consumes: readonly number[];
  readonly produces: readonly number[];
}

/** A bid step that did not, and why. */
interface Exclusion {
  readonly key: string;
  readonly reason: string;
}

/** The merged AND/OR graph over interned artifact indices. */
interface Graph {
  readonly names: string[];
  readonly index: Map<string, number>;
  readonly steps: Candidate[];
  /** Per artifact: allowed producing steps. */
  readonly producers: number[][];
  /** Per artifact: allowed consuming steps. */
  readonly consumers: number[][];
  /** Per artifact: producing steps excluded by constraints. */
  readonly excludedProducers: Exclusion[][];
  readonly excluded: Exclusion[];
  /** 1 for artifacts in the request's input. */
  source: Uint8Array;
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

  const allSteps = new Uint8Array(graph.steps.length).fill(1);
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
    enabled = new Uint8Array(graph.steps.length);
    let pruned = 0;
    for (let s = 0; s < graph.steps.length; s += 1) {
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

function internArtifact(g: Graph, name: string): number {
  let i = g.index.get(name);
  if (i === undefined) {
    i = g.names.length;
    g.index.set(name, i);
    g.names.push(name);
    g.producers.push([]);
    g.consumers.push([]);
    g.excludedProducers.push([]);
  }
  return i;
}

/** Interned indices of `names`, without duplicates. */
function internAll(g: Graph, names: readonly string[]): number[] {
  const out: number[] = [];
  for (const name of names) {
    const i = internArtifact(g, name);
    if (!out.includes(i)) out.push(i);
  }
  return out;
}

function buildGraph(input: PlanInput, notes: string[]): Graph {
  const { request, agents } = input;
  const g: Graph = {
    names: [], index: new Map(), steps: [], producers: [], consumers: [], excludedProducers: [], excluded: [],
    source: new Uint8Array(0),
  };
  const inputs = Object.keys(request.input);
  for (const name of inputs) internArtifact(g, name);
  for (const name of request.want) internArtifact(g, name);
  const bids = [...input.bids].sort((a, b) => compareStrings(a.agentId, b.agentId));
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
      const key = `${bid.agentId}/${step.id}`;
      const produces = internAll(g, step.produces);
      const ownClasses = step.dataClasses !== undefined && step.dataClasses.length > 0;
      const reason = agentProblem ?? (ownClasses ? stepExclusion(agent!, step, request.constraints) : plainProblem);
      if (reason !== undefined) {
        const exclusion = { key, reason };
        g.excluded.push(exclusion);
        for (const a of produces) g.excludedProducers[a]!.push(exclusion);
        continue;
      }
      const consumes = internAll(g, step.consumes);
      const s = g.steps.length;
      g.steps.push({ key, agentId: bid.agentId, step, consumes, produces });
      for (const a of produces) g.producers[a]!.push(s);
      for (const a of consumes) g.consumers[a]!.push(s);
    }
  }
  g.source = new Uint8Array(g.names.length);
  for (const name of inputs) g.source[g.index.get(name)!] = 1;
  if (g.excluded.length > 0) {
    notes.push(`excluded ${g.excluded.length} proposed step(s) by constraints: ${listed(g.excluded.map((e) => `${e.key} (${e.reason})`))}`);
  }
  return g;
}

/** Why every step of this agent is excluded, or undefined when the agent itself is acceptable. */
function agentExclusion(agent: AgentRecord | undefined, constraints: Constraints): string | undefined {
  if (agent === undefined) return 'agent not in the registry';
  if (agent.state !== 'online') return `agent is ${agent.state}`;
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
  const nS = g.steps.length;
  const best = new Int32Array(nA).fill(-1);
  const usd = new Float64Array(nA).fill(Infinity);
  const ms = new Float64Array(nA).fill(Infinity);
  const stepUsd = new Float64Array(nS).fill(Infinity);
  const stepMs = new Float64Array(nS).fill(Infinity);
  const done = new Uint8Array(nA);
  const remaining = new Int32Array(nS);
  const heap = new KeyHeap();
  const timeFirst = mode === 'time';
  const key1 = (u: number, m: number): number => (timeFirst ? m : u);
  const key2 = (u: number, m: number): number => (timeFirst ? u : m);

  const better = (s: number, t: number): boolean => {
    const a1 = key1(stepUsd[s]!, stepMs[s]!);
    const b1 = key1(stepUsd[t]!, stepMs[t]!);
    if (a1 !== b1) return a1 < b1;
    const a2 = key2(stepUsd[s]!, stepMs[s]!);
    const b2 = key2(stepUsd[t]!, stepMs[t]!);
    if (a2 !== b2) return a2 < b2;
    const x = g.steps[s]!;
    const y = g.steps[t]!;
    return x.agentId !== y.agentId ? x.agentId < y.agentId : x.step.id < y.step.id;
  };
  const fire = (s: number): void => {
    const c = g.steps[s]!;
    let u = c.step.estUsd;
    let m = 0;
    let maxU = 0;
    for (const a of c.consumes) {
      if (mode === 'bound') maxU = Math.max(maxU, usd[a]!);
      else u += usd[a]!;
      m = Math.max(m, ms[a]!);
    }
    stepUsd[s] = mode === 'bound' ? u + maxU : u;
    stepMs[s] = c.step.estMs + m;
    for (const a of c.produces) {
      if (done[a] === 1) continue;
      const current = best[a]!;
      if (current === -1 || better(s, current)) {
        best[a] = s;
        usd[a] = stepUsd[s]!;
        ms[a] = stepMs[s]!;
        heap.push(key1(usd[a], ms[a]), key2(usd[a], ms[a]), a);
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
    for (const a of g.steps[s]!.consumes) if (g.source[a] === 0) open += 1;
    remaining[s] = open;
    if (open === 0) fire(s);
  }
  while (heap.size > 0) {
    const a = heap.pop();
    if (done[a] === 1) continue;
    done[a] = 1;
    for (const s of g.consumers[a]!) {
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
  const chosen = new Uint8Array(g.steps.length);
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
    for (const c of g.steps[s]!.consumes) stack.push(c);
  }
  return finishSolution(g, steps, assign);
}

function finishSolution(g: Graph, steps: number[], assign: Int32Array): Solution {
  let usd = 0;
  for (const s of steps) usd += g.steps[s]!.step.estUsd;
  return { steps, assign, usd, ms: criticalPath(g, steps, assign) };
}

/** Longest estMs path through the chosen steps, following the chosen producer of each artifact. */
function criticalPath(g: Graph, steps: readonly number[], assign: Int32Array): number {
  const finish = new Map<number, number>();
  const visit = (s: number): number => {
    const known = finish.get(s);
    if (known !== undefined) return known;
    let start = 0;
    for (const a of g.steps[s]!.consumes) {
      const p = assign[a]!;
      if (p !== -1) start = Math.max(start, visit(p));
    }
    const f = start + g.steps[s]!.step.estMs;
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
  const nS = g.steps.length;
  const own = (s: number): number => g.steps[s]!.step.estUsd;
  // Built on first need (most artifacts never become pending). Sorted by own cost, so the loop over
  // fresh producers can stop at the first one that cannot beat the best plan.
  const optionCache: (number[] | undefined)[] = new Array<number[] | undefined>(nA);
  const minUsd = new Float64Array(nA).fill(Infinity);
  // The least a fresh step can charge per artifact it makes: a step making k pending artifacts pays for all k.
  const minShare = new Float64Array(nA).fill(Infinity);
  const options = (a: number): number[] => {
    let list = optionCache[a];
    if (list === undefined) {
      list = g.producers[a]!
        .filter((s) => enabled[s] === 1 && d.stepUsd[s] !== Infinity)
        .sort((s, t) => own(s) - own(t) || d.stepUsd[s]! - d.stepUsd[t]! || d.stepMs[s]! - d.stepMs[t]! || compareStrings(g.steps[s]!.key, g.steps[t]!.key));
      optionCache[a] = list;
      if (list.length > 0) minUsd[a] = own(list[0]!);
      for (const s of list) minShare[a] = Math.min(minShare[a]!, own(s) / g.steps[s]!.produces.length);
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
    for (const c of g.steps[s]!.consumes) stack.push(c);
    while (stack.length > 0) {
      const a = stack.pop()!;
      if (a === target) return true;
      if (visitedAt[a] === visit) continue;
      visitedAt[a] = visit;
      const p = assign[a]!;
      if (p !== -1) for (const c of g.steps[p]!.consumes) stack.push(c);
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
      for (const p of g.steps[s]!.produces) chosenProducers[p]! += 1;
      for (const c of g.steps[s]!.consumes) addPending(c);
    }
    if (next + lowerBound() < bestUsd - EPS) dfs(next);
    while (pending.length > before) inPending[pending.pop()!] = 0;
    if (fresh) {
      chosenSteps.pop();
      for (const p of g.steps[s]!.produces) chosenProducers[p]! -= 1;
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
      for (const s of [...chosenSteps]) if (complete && g.steps[s]!.produces.includes(a)) branch(a, s, usd);
    }
    for (const s of producers) {
      if (!complete || usd + Math.max(own(s), bound) >= bestUsd - EPS) break;
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
  const byKey = [...sol.steps].sort((s, t) => compareStrings(g.steps[s]!.key, g.steps[t]!.key));
  const position = new Map(byKey.map((s, i) => [s, i]));
  const indegree = new Int32Array(byKey.length);
  const successors: number[][] = byKey.map(() => []);
  byKey.forEach((s, i) => {
    const preds = new Set<number>();
    for (const a of g.steps[s]!.consumes) {
      const p = sol.assign[a]!;
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
    const c = g.steps[byKey[i]!]!;
    out.push({ ...c.step, id: `s${out.length + 1}`, proposedBy: c.agentId, proposedStepId: c.step.id });
    for (const n of successors[i]!) {
      indegree[n]! -= 1;
      if (indegree[n] === 0) ready.push(n);
    }
  }
  return out;
}

/** One note per produced artifact: who makes it, and why each alternative lost. */
function explainChoices(g: Graph, costD: Derivation, timeD: Derivation | undefined, enabled: Uint8Array, sol: Solution, timeLeft: number): string[] {
  const notes: string[] = [];
  const artifacts: number[] = [];
  for (let a = 0; a < sol.assign.length; a += 1) if (sol.assign[a] !== -1) artifacts.push(a);
  artifacts.sort((x, y) => compareStrings(g.names[x]!, g.names[y]!));
  for (const a of artifacts) {
    const s = sol.assign[a]!;
    const alternatives: string[] = [];
    for (const p of g.producers[a]!) {
      if (p === s) continue;
      const key = g.steps[p]!.key;
      if (timeD !== undefined && enabled[p] !== 1 && timeD.stepMs[p] !== Infinity) {
        alternatives.push(`${key} (earliest finish ${fmtMs(timeD.stepMs[p]!)}, after the ${fmtMs(timeLeft)} left)`);
      } else if (costD.stepUsd[p] === Infinity) {
        alternatives.push(`${key} (its inputs cannot be derived)`);
      } else {
        alternatives.push(`${key} (derivation ${fmtUsd(costD.stepUsd[p]!)}, ${fmtMs(costD.stepMs[p]!)})`);
      }
    }
    for (const e of g.excludedProducers[a]!) alternatives.push(`${e.key} (excluded: ${e.reason})`);
    const c = g.steps[s]!;
    const head = `artifact '${g.names[a]}' from ${c.key} (${fmtUsd(c.step.estUsd)}, ${fmtMs(c.step.estMs)})`;
    notes.push(alternatives.length === 0 ? `${head}; no alternative` : `${head}; rejected ${listed(alternatives)}`);
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
    const producers = g.producers[a]!;
    const excluded = g.excludedProducers[a]!;
    if (producers.length === 0 && excluded.length === 0) {
      reasons.push(`artifact '${name}' has no producer and is not in the task input`);
      return;
    }
    if (producers.length === 0) {
      reasons.push(`artifact '${name}' is produced only by steps excluded by constraints: ${listed(excluded.map((e) => `${e.key} (${e.reason})`))}`);
      return;
    }
    const blocked: string[] = [];
    const missing = new Set<number>();
    for (const s of producers) {
      const lacking = g.steps[s]!.consumes.filter((c) => d.usd[c] === Infinity);
      for (const c of lacking) missing.add(c);
      blocked.push(`${g.steps[s]!.key} needs ${lacking.map((c) => `'${g.names[c]}'`).join(', ')}`);
    }
    const also = excluded.length > 0 ? `; excluded by constraints: ${listed(excluded.map((e) => `${e.key} (${e.reason})`))}` : '';
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
