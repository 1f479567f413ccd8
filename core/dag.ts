/**
 * Structural checks on one agent's proposed sub-task DAG, and topological ordering.
 *
 * Edges are implied by artifacts: a step consuming `x` follows the step producing `x`. The zod
 * schema has already checked field shapes; these checks are about the graph and the estimates,
 * which a schema cannot see. Everything here is linear in the size of the proposal.
 */
import { CyclicDagError, InvalidDagError } from './errors';
import type { ProposedStep } from './schemas';

/** Largest estimated cost of one step, USD. A bid above this is a mistake or an attempt to game the planner. */
export const MAX_STEP_USD = 1_000;

/** Longest estimated duration of one step, ms (24 hours, as in the schema). */
export const MAX_STEP_MS = 86_400_000;

/** Most steps in one proposal (as in the schema). */
export const MAX_PROPOSAL_STEPS = 100;

/** The minimal shape the graph helpers need. */
export interface DagNode {
  readonly id: string;
  readonly consumes: readonly string[];
  readonly produces: readonly string[];
}

/**
 * Throws InvalidDagError or CyclicDagError when `steps` is not a usable proposal:
 * empty or too many steps, duplicate step ids, a step consuming what it produces itself, two steps
 * producing the same artifact (the plan could not tell which one to use), estimates that are not
 * finite, negative, zero-duration or above {@link MAX_STEP_USD} / {@link MAX_STEP_MS}, or a cycle.
 * The checks run in that order, so the first error reported is the most basic one.
 */
export function validateProposal(steps: readonly ProposedStep[]): void {
  if (steps.length === 0) throw new InvalidDagError('proposal has no steps');
  if (steps.length > MAX_PROPOSAL_STEPS) {
    throw new InvalidDagError(`proposal has ${steps.length} steps; at most ${MAX_PROPOSAL_STEPS} are allowed`);
  }
  const ids = new Set<string>();
  for (const step of steps) {
    if (ids.has(step.id)) throw new InvalidDagError(`step id '${step.id}' is used by more than one step`);
    ids.add(step.id);
  }
  for (const step of steps) {
    for (const own of step.consumes) {
      if (step.produces.includes(own)) throw new InvalidDagError(`step '${step.id}' consumes '${own}', which it produces itself`);
    }
  }
  const producerOf = new Map<string, number>();
  for (let i = 0; i < steps.length; i += 1) {
    const step = steps[i]!;
    for (const artifact of step.produces) {
      const other = producerOf.get(artifact);
      if (other !== undefined && other !== i) {
        throw new InvalidDagError(`artifact '${artifact}' is produced by both step '${steps[other]!.id}' and step '${step.id}'; it is ambiguous`);
      }
      producerOf.set(artifact, i);
    }
  }
  for (const step of steps) checkEstimates(step);
  // The planner validates every bid of every task, so the common (acyclic) case gets a cheap check
  // over the producer map already built; only a cyclic proposal pays for the full ordering that
  // names the cycle.
  if (hasCycle(steps, producerOf)) topologicalOrder(steps);
}

/**
 * True when following consumes → (unique) producer edges from some step returns to it. Iterative
 * depth-first search with on-path marks; each step and edge is visited once.
 */
function hasCycle(steps: readonly ProposedStep[], producerOf: ReadonlyMap<string, number>): boolean {
  const n = steps.length;
  const state = new Uint8Array(n); // 0 unseen, 1 on the DFS path, 2 done
  const pathNode = new Int32Array(n);
  const pathEdge = new Int32Array(n);
  for (let root = 0; root < n; root += 1) {
    if (state[root] !== 0) continue;
    let depth = 1;
    pathNode[0] = root;
    pathEdge[0] = 0;
    state[root] = 1;
    while (depth > 0) {
      const i = pathNode[depth - 1]!;
      const consumes = steps[i]!.consumes;
      const e = pathEdge[depth - 1]!;
      if (e === consumes.length) {
        state[i] = 2;
        depth -= 1;
        continue;
      }
      pathEdge[depth - 1] = e + 1;
      const p = producerOf.get(consumes[e]!);
      if (p === undefined || state[p] === 2) continue;
      if (state[p] === 1) return true;
      state[p] = 1;
      pathNode[depth] = p;
      pathEdge[depth] = 0;
      depth += 1;
    }
  }
  return false;
}

function checkEstimates(step: ProposedStep): void {
  const { id, estUsd, estMs } = step;
  if (typeof estUsd !== 'number' || !Number.isFinite(estUsd) || estUsd < 0) {
    throw new InvalidDagError(`step '${id}' has estUsd ${String(estUsd)}; it must be a finite number >= 0`);
  }
  if (estUsd > MAX_STEP_USD) throw new InvalidDagError(`step '${id}' estimates $${estUsd}; at most $${MAX_STEP_USD} per step is accepted`);
  if (typeof estMs !== 'number' || !Number.isFinite(estMs) || estMs <= 0) {
    throw new InvalidDagError(`step '${id}' has estMs ${String(estMs)}; it must be a finite number > 0`);
  }
  if (estMs > MAX_STEP_MS) throw new InvalidDagError(`step '${id}' estimates ${estMs} ms; at most ${MAX_STEP_MS} ms per step is accepted`);
}

/**
 * Orders `nodes` so that every node comes after the producers of what it consumes (Kahn's
 * algorithm; among ready nodes the original order is kept, so the result is deterministic).
 * Artifacts with no producer among `nodes` are treated as external inputs. When an artifact has
 * several producers, a consumer follows all of them. Throws CyclicDagError naming the step ids
 * around one cycle, first id repeated at the end (e.g. `a -> b -> a`).
 */
export function topologicalOrder<T extends DagNode>(nodes: readonly T[]): T[] {
  const producers = new Map<string, number[]>();
  nodes.forEach((node, i) => {
    for (const artifact of node.produces) {
      const list = producers.get(artifact);
      if (list === undefined) producers.set(artifact, [i]);
      else list.push(i);
    }
  });
  const successors: number[][] = nodes.map(() => []);
  const indegree = new Int32Array(nodes.length);
  nodes.forEach((node, i) => {
    const preds = new Set<number>();
    for (const artifact of node.consumes) for (const p of producers.get(artifact) ?? []) preds.add(p);
    for (const p of preds) {
      successors[p]!.push(i);
      indegree[i]! += 1;
    }
  });
  // A min-heap over indices keeps "original order among ready nodes" without a quadratic scan.
  const ready = new IndexHeap();
  for (let i = 0; i < nodes.length; i += 1) if (indegree[i] === 0) ready.push(i);
  const order: T[] = [];
  while (ready.size > 0) {
    const i = ready.pop();
    order.push(nodes[i]!);
    for (const s of successors[i]!) {
      indegree[s]! -= 1;
      if (indegree[s] === 0) ready.push(s);
    }
  }
  if (order.length < nodes.length) throw new CyclicDagError(findCycle(nodes, successors, indegree));
  return order;
}

/** Step ids around one cycle among the nodes Kahn's algorithm could not order. */
function findCycle(nodes: readonly DagNode[], successors: readonly number[][], indegree: Int32Array): string[] {
  const stuck = (i: number): boolean => indegree[i]! > 0;
  const state = new Uint8Array(nodes.length); // 0 unseen, 1 on the DFS path, 2 done
  const path: number[] = [];
  const visit = (i: number): number[] | undefined => {
    state[i] = 1;
    path.push(i);
    for (const s of successors[i]!) {
      if (!stuck(s)) continue;
      if (state[s] === 1) return [...path.slice(path.indexOf(s)), s];
      if (state[s] === 0) {
        const found = visit(s);
        if (found !== undefined) return found;
      }
    }
    path.pop();
    state[i] = 2;
    return undefined;
  };
  for (let i = 0; i < nodes.length; i += 1) {
    if (stuck(i) && state[i] === 0) {
      const cycle = visit(i);
      if (cycle !== undefined) return cycle.map((n) => nodes[n]!.id);
    }
  }
  return nodes.filter((_, i) => stuck(i)).map((n) => n.id);
}

/** A binary min-heap of non-negative integers. */
class IndexHeap {
  private readonly items: number[] = [];

  get size(): number {
    return this.items.length;
  }

  push(value: number): void {
    const a = this.items;
    a.push(value);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent]! <= value) break;
      a[i] = a[parent]!;
      i = parent;
    }
    a[i] = value;
  }

  pop(): number {
    const a = this.items;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const c = r < a.length && a[r]! < a[l]! ? r : l;
        if (a[c]! >= last) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}
