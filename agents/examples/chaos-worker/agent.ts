/**
 * `chaos-worker`: the agent of the chaos scenario (bench/lib/chaos-scenario.ts). It offers one of
 * two skills, so every chaos task needs a plan merged from two agents:
 *
 *   chaos-a: seed     → a_effect
 *   chaos-b: a_effect → b_effect
 *
 * Each execution does a little real work (an iterated SHA-256 over its inputs, for a random
 * 20–300 ms, honouring the abort signal), then performs its one EFFECT: it appends a line
 * `{taskId, stepId, epoch, agentId, effectId}` to an effect ledger file and returns the effect id
 * in its output. The ledger is what proves, after a chaos run, that no accepted step's effect
 * happened twice: an accepted output's (task, step, epoch) must have exactly one ledger line.
 *
 * The ledger stands for an external effect, so it is keyed the way one should be: each line
 * carries the attempt's `ctx.idempotencyKey`, and a resumed attempt (its predecessor process
 * died after starting it) first looks the key up and, when the effect is there, returns it
 * instead of appending a second line.
 */
import { createHash, randomUUID } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { defineAgent, type AgentDefinition } from '../../runtime/define-agent';
import { ExecutionAbortedError, StepError } from '../../runtime/errors';
import type { Assignment, JsonValue } from '../../../core/schemas';

/** The two skills and what each consumes and produces. */
export const CHAOS_SKILLS = {
  'chaos-a': { stepId: 'a', consumes: ['seed'], produces: 'a_effect' },
  'chaos-b': { stepId: 'b', consumes: ['a_effect'], produces: 'b_effect' },
} as const;

/** A chaos skill name. */
export type ChaosSkill = keyof typeof CHAOS_SKILLS;

/** One line of the effect ledger. */
export interface EffectLine {
  readonly taskId: string;
  readonly stepId: string;
  readonly epoch: number;
  readonly agentId: string;
  readonly effectId: string;
  readonly at: string;
  /** The runtime's idempotency key of the attempt (absent in ledgers written before it existed). */
  readonly idempotencyKey?: string;
  /** The step's digest, so a resumed attempt can return what the first one produced. */
  readonly digest?: string;
}

/** The artifact a chaos step produces. */
export interface EffectArtifact {
  readonly effect: string;
  readonly digest: string;
  readonly agentId: string;
  readonly epoch: number;
}

/** Tuning of {@link createChaosWorker}. */
export interface ChaosWorkerOptions {
  readonly skill: ChaosSkill;
  /** File every effect is appended to (shared by all workers of a run). */
  readonly ledgerPath: string;
  /** Work duration bounds, ms. @default 20 / 300 */
  readonly minWorkMs?: number;
  readonly maxWorkMs?: number;
  /** Steps run at once. @default 8 */
  readonly maxConcurrent?: number;
  /** @default Math.random */
  readonly random?: () => number;
}

const PRICE_USD = 0.001;

/** Largest ledger line: one write() of at most this many bytes is never interleaved with another appender's. */
const MAX_LINE_BYTES = 4096;

/**
 * Appends one JSON line with a single write() on an O_APPEND descriptor, so lines from
 * concurrent processes never interleave. Synchronous on purpose: once execute() returns, the
 * effect is in the file (the kernel keeps it even if the process is killed next).
 */
export function appendEffect(ledgerPath: string, line: EffectLine): void {
  const bytes = Buffer.from(`${JSON.stringify(line)}\n`, 'utf8');
  if (bytes.byteLength > MAX_LINE_BYTES) throw new StepError('ledger-line-too-long', `ledger line is ${bytes.byteLength} bytes; at most ${MAX_LINE_BYTES} are appended atomically`, { retryable: false });
  const fd = openSync(ledgerPath, 'a');
  try {
    writeSync(fd, bytes);
  } finally {
    closeSync(fd);
  }
}

/**
 * The ledger line recorded under `idempotencyKey`, if any. A resumed attempt is rare (its
 * process died mid-step), so scanning the file is cheap enough; a line cut short by a crash
 * is not an effect and is skipped.
 */
export function findEffect(ledgerPath: string, idempotencyKey: string): EffectLine | undefined {
  let text: string;
  try {
    text = readFileSync(ledgerPath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  for (const line of text.split('\n')) {
    if (!line.includes(idempotencyKey)) continue;
    try {
      const parsed = JSON.parse(line) as EffectLine;
      if (parsed.idempotencyKey === idempotencyKey) return parsed;
    } catch {
      // a torn line: not a recorded effect
    }
  }
  return undefined;
}

/** Iterated SHA-256 over the step's inputs until `until` (epoch ms) or an abort, yielding between rounds. */
async function hashUntil(seed: string, until: number, signal: AbortSignal): Promise<string> {
  let digest = createHash('sha256').update(seed).digest('hex');
  while (Date.now() < until) {
    for (let i = 0; i < 200; i += 1) digest = createHash('sha256').update(digest).digest('hex');
    await new Promise<void>((resolve) => setTimeout(resolve, 5));
    if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new ExecutionAbortedError('task-ended', 'aborted');
  }
  return digest;
}

function inputText(assignment: Assignment, names: readonly string[]): string {
  return names.map((n) => JSON.stringify(assignment.inputs[n] ?? null)).join('|');
}

/** Builds a chaos worker agent for `id` offering `options.skill`. */
export function createChaosWorker(id: string, options: ChaosWorkerOptions): AgentDefinition {
  const spec = CHAOS_SKILLS[options.skill];
  const random = options.random ?? Math.random;
  const minMs = options.minWorkMs ?? 20;
  const maxMs = options.maxWorkMs ?? 300;
  if (!(minMs >= 0 && maxMs >= minMs)) throw new RangeError(`work duration needs 0 <= min <= max; got ${minMs} and ${maxMs}`);
  return defineAgent({
    id,
    resume: {
      skills: [options.skill],
      cost: { usd: PRICE_USD, p95_ms: maxMs },
      region: 'eu-central-1',
      name: `Chaos worker (${options.skill})`,
      description: 'Does a little hashing and records one effect per execution in an effect ledger.',
      version: '1.0.0',
      maxConcurrent: options.maxConcurrent ?? 8,
    },
    propose(request) {
      if (!request.want.includes(spec.produces)) return { decline: true, reason: `wants no ${spec.produces}` };
      return { steps: [{ id: spec.stepId, skill: options.skill, consumes: [...spec.consumes], produces: [spec.produces], estUsd: PRICE_USD, estMs: maxMs }] };
    },
    async execute(assignment, ctx) {
      const missing = spec.consumes.filter((n) => assignment.inputs[n] === undefined);
      if (missing.length > 0) throw new StepError('invalid-input', `step ${assignment.stepId} needs ${missing.join(', ')}`, { retryable: false });
      if (ctx.resumed) {
        // The previous attempt may have done the effect before its process died: do not do it twice.
        const done = findEffect(options.ledgerPath, ctx.idempotencyKey);
        if (done !== undefined) {
          ctx.log.info('effect already in the ledger; returning it', { effectId: done.effectId });
          const artifact: EffectArtifact = { effect: done.effectId, digest: done.digest ?? '', agentId: done.agentId, epoch: done.epoch };
          return { [spec.produces]: artifact as unknown as JsonValue };
        }
      }
      const until = Date.now() + minMs + random() * (maxMs - minMs);
      const digest = await hashUntil(inputText(assignment, spec.consumes), until, ctx.signal);
      const effectId = `${id}:${randomUUID()}`;
      appendEffect(options.ledgerPath, {
        taskId: assignment.taskId, stepId: assignment.stepId, epoch: assignment.epoch, agentId: id, effectId, at: new Date().toISOString(),
        idempotencyKey: ctx.idempotencyKey, digest,
      });
      const artifact: EffectArtifact = { effect: effectId, digest, agentId: id, epoch: assignment.epoch };
      return { [spec.produces]: artifact as unknown as JsonValue };
    },
  });
}
