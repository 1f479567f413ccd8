/**
 * The wire contract: one zod schema per message (ARCHITECTURE §3), types inferred from them.
 *
 * Every payload carries `"v": 1`; it is optional on input (the seed's résumé has none) and
 * always written on output. Unknown fields are tolerated on input and dropped.
 */
import { z } from 'zod';
import { MAX_ID_LENGTH } from './topics';
import { PayloadTooLargeError, ValidationError } from './errors';

/** AWS IoT Core's payload limit; Porchlight refuses anything larger everywhere, locally too. */
export const MAX_PAYLOAD_BYTES = 128 * 1024;

/** Schema version written on every payload. */
export const SCHEMA_VERSION = 1 as const;

const version = z.literal(SCHEMA_VERSION).default(SCHEMA_VERSION);
const idChars = /^[A-Za-z0-9_:-]+$/;

/** An id that may be spliced into a topic (same rules as topics.validateId). */
export const Id = z
  .string()
  .min(1)
  .max(MAX_ID_LENGTH)
  .regex(idChars, "only letters, digits, '_', ':' and '-' are allowed");

/** A skill name, e.g. `sql-optimiser`. */
export const SkillName = z.string().min(1).max(64).regex(/^[a-z0-9][a-z0-9._-]*$/, 'skill names are lower-case letters, digits, ".", "_" and "-"');

/** An artifact name: a key in a task's input or a step's consumes/produces. */
export const ArtifactName = z.string().min(1).max(128).regex(/^[A-Za-z0-9_.:-]+$/, "artifact names use letters, digits, '_', '.', ':' and '-'");

/** A label such as an accreditation (`gdpr`, `ISO27001`) or a data class (`phi`). */
export const Label = z.string().min(1).max(64).regex(/^[A-Za-z0-9_.:-]+$/, "labels use letters, digits, '_', '.', ':' and '-'");

/** ISO-8601 timestamp with offset. */
export const Timestamp = z.iso.datetime({ offset: true });

/** Any JSON value. */
export const JsonValue = z.json();
export type JsonValue = z.infer<typeof JsonValue>;

/** Named artifacts: the values a task starts from and its steps produce. */
export const Artifacts = z.record(ArtifactName, JsonValue);
export type Artifacts = z.infer<typeof Artifacts>;

// ---------------------------------------------------------------------------------------------
// Agents

/** A skill with details, mappable to an A2A AgentSkill. */
export const SkillDetail = z.object({
  id: SkillName,
  description: z.string().max(2000).optional(),
  tags: z.array(Label).max(32).optional(),
  inputSchema: z.record(z.string(), JsonValue).optional(),
  outputSchema: z.record(z.string(), JsonValue).optional(),
});

/**
 * `agents/{agentId}/resume` (retained): what an agent can do, at what cost, where, with which
 * accreditations. The seed article's example validates as-is.
 */
export const Resume = z.object({
  v: version,
  skills: z.array(SkillName).min(1).max(64),
  cost: z.object({
    /** Typical price of one step, USD. */
    usd: z.number().nonnegative().finite(),
    /** 95th-percentile latency of one step, ms. */
    p95_ms: z.number().nonnegative().finite(),
  }),
  region: z.string().min(1).max(64),
  accredit: z.array(Label).max(32).default([]),
  name: z.string().max(200).optional(),
  description: z.string().max(2000).optional(),
  version: z.string().max(64).optional(),
  skillDetails: z.array(SkillDetail).max(64).optional(),
  maxConcurrent: z.number().int().min(1).max(10_000).optional(),
  pools: z.array(Id).max(16).optional(),
  dataClasses: z.array(Label).max(32).optional(),
});
export type Resume = z.infer<typeof Resume>;

/** Agent lifecycle states. */
export const AgentState = z.enum(['online', 'draining', 'offline']);
export type AgentState = z.infer<typeof AgentState>;

/** `agents/{agentId}/status` (retained; the last will says offline). */
export const AgentStatus = z.object({
  v: version,
  state: AgentState,
  load: z.object({ active: z.number().int().nonnegative(), max: z.number().int().positive() }).optional(),
  reason: z.string().max(500).optional(),
  at: Timestamp.optional(),
});
export type AgentStatus = z.infer<typeof AgentStatus>;

/** `agents/{agentId}/telemetry`: measured from real executions; updates the registry. */
export const Telemetry = z.object({
  v: version,
  /** Executions the figures are computed over. */
  executions: z.number().int().nonnegative(),
  /** Mean measured cost per step, USD. */
  costUsd: z.number().nonnegative().finite(),
  p95Ms: z.number().nonnegative().finite(),
  /** Share of executions that succeeded, 0..1. */
  successRate: z.number().min(0).max(1),
  at: Timestamp.optional(),
});
export type Telemetry = z.infer<typeof Telemetry>;

/** `agents/{agentId}/errors`: why the orchestrator rejected something this agent sent. */
export const RejectNotice = z.object({
  v: version,
  code: z.string().min(1).max(64),
  message: z.string().max(2000),
  /** The topic of the rejected message. */
  topic: z.string().max(256),
  taskId: Id.optional(),
  stepId: Id.optional(),
  at: Timestamp,
});
export type RejectNotice = z.infer<typeof RejectNotice>;

// ---------------------------------------------------------------------------------------------
// Tasks

/** What a plan must respect. */
export const Constraints = z.object({
  /** Budget for the whole plan, USD. */
  maxUsd: z.number().positive().finite().optional(),
  /** The task fails if not completed by then. The plan's critical path must fit. */
  deadline: Timestamp.optional(),
  /** Allowed agent regions (one or several). */
  region: z.union([z.string().min(1).max(64), z.array(z.string().min(1).max(64)).min(1).max(32)]).optional(),
  /** Accreditations every assigned agent must hold (verified). */
  accredit: z.array(Label).max(32).optional(),
  /** Data classes of the task's data; sensitive ones move the task to their own topic tree. */
  dataClasses: z.array(Label).max(32).optional(),
});
export type Constraints = z.infer<typeof Constraints>;

/** `tasks/{taskId}/request`: a client asks for artifacts `want`, starting from `input`. */
export const TaskRequest = z.object({
  v: version,
  goal: z.string().min(1).max(4000),
  input: Artifacts.default({}),
  want: z.array(ArtifactName).min(1).max(64),
  constraints: Constraints.default({}),
  /** Hint: skills the client expects to be useful. */
  skills: z.array(SkillName).max(64).optional(),
  /** How long to collect proposals, ms (default 2000). Closes early once every eligible agent answered. */
  proposalWindowMs: z.number().int().min(50).max(60_000).optional(),
  /** Hex SHA-256 of a secret; a cancel must present the secret. No hash, no cancel. */
  cancelHash: z.string().regex(/^[0-9a-f]{64}$/, 'cancelHash is a lower-case hex SHA-256').optional(),
  /** Self-declared client id: informative only, never trusted for authority. */
  client: z.string().max(128).optional(),
  /** W3C trace context. */
  traceparent: z.string().max(128).optional(),
});
export type TaskRequest = z.infer<typeof TaskRequest>;

/** One step of a proposed sub-task DAG. Edges are implied: a step consuming X follows the step producing X. */
export const ProposedStep = z.object({
  id: Id,
  skill: SkillName,
  consumes: z.array(ArtifactName).max(32).default([]),
  produces: z.array(ArtifactName).min(1).max(32),
  /** Estimated cost, USD. */
  estUsd: z.number().nonnegative().finite(),
  /** Estimated duration, ms. */
  estMs: z.number().positive().finite().max(86_400_000),
  /** Send to a pool (shared subscription) instead of a single agent. */
  pool: Id.optional(),
  dataClasses: z.array(Label).max(32).optional(),
});
export type ProposedStep = z.infer<typeof ProposedStep>;

/** A bid: the steps this agent would run. */
export const Bid = z.object({
  v: version,
  steps: z.array(ProposedStep).min(1).max(100),
  note: z.string().max(2000).optional(),
});
export type Bid = z.infer<typeof Bid>;

/** An explicit "no". Counts as an answer, so the proposal window can close early. */
export const Decline = z.object({
  v: version,
  decline: z.literal(true),
  reason: z.string().max(2000),
});
export type Decline = z.infer<typeof Decline>;

/** `tasks/{taskId}/proposal/{agentId}`: a bid or a decline. */
export const Proposal = z.union([Decline, Bid]);
export type Proposal = z.infer<typeof Proposal>;

/** True when the proposal is a decline. */
export function isDecline(p: Proposal): p is Decline {
  return 'decline' in p && p.decline === true;
}

/** `{root}/{taskId}/assign/{agentId}`: one step for one agent (a pool step once its claimant won it). */
export const Assignment = z.object({
  v: version,
  taskId: Id,
  stepId: Id,
  /** Increases on every re-assignment; outputs must echo it. */
  epoch: z.number().int().positive(),
  /** Unguessable fencing token only the assignee receives; outputs must echo it. */
  token: z.string().min(16).max(128),
  skill: SkillName,
  goal: z.string().max(4000),
  /** Resolved inputs: the artifacts this step consumes. */
  inputs: Artifacts,
  produces: z.array(ArtifactName).min(1).max(32),
  /** Step deadline; the step's result is ignored after it. */
  deadline: Timestamp,
  /** The lease: the assignee must answer within this long or the step is re-assigned. */
  leaseMs: z.number().int().positive(),
  taskRoot: z.string().min(1).max(64).optional(),
  /** The assignee; its output and progress go to topics ending in this id. */
  agentId: Id.optional(),
  traceparent: z.string().max(128).optional(),
});
export type Assignment = z.infer<typeof Assignment>;

/**
 * `{root}/{taskId}/pool/{pool}`: a step offered to a pool. It carries no fencing token and no
 * inputs: a member claims it (see {@link Claim}) and the winner gets a normal fenced
 * {@link Assignment}, with the inputs, on its own `assign/{agentId}` topic.
 */
export const PoolOffer = z.object({
  v: version,
  taskId: Id,
  stepId: Id,
  pool: Id,
  /** The step's epoch for this offer; a claim must echo it. A re-offer raises it. */
  epoch: z.number().int().positive(),
  skill: SkillName,
  goal: z.string().max(4000),
  /** Names of the artifacts the step consumes (their values come with the assignment). */
  consumes: z.array(ArtifactName).max(32),
  produces: z.array(ArtifactName).min(1).max(32),
  /** Step deadline. */
  deadline: Timestamp,
  /** How long the offer stands: unclaimed after this, it is offered again (or the task fails). */
  claimWithinMs: z.number().int().positive(),
  taskRoot: z.string().min(1).max(64).optional(),
  traceparent: z.string().max(128).optional(),
});
export type PoolOffer = z.infer<typeof PoolOffer>;

/**
 * `{root}/{taskId}/claim/{stepId}/{agentId}`: a pool member asks for an offered step. Only the
 * orchestrator reads it; the first valid claim of an offer wins.
 */
export const Claim = z.object({
  v: version,
  taskId: Id,
  stepId: Id,
  /** The epoch of the offer being claimed. */
  epoch: z.number().int().positive(),
});
export type Claim = z.infer<typeof Claim>;

/** Usage reported with an output. */
export const Usage = z.object({
  usd: z.number().nonnegative().finite().default(0),
  ms: z.number().nonnegative().finite().default(0),
  tokens: z.number().int().nonnegative().optional(),
});
export type Usage = z.infer<typeof Usage>;

const outputHead = {
  v: version,
  taskId: Id,
  stepId: Id,
  epoch: z.number().int().positive(),
  usage: Usage.optional(),
};
const outputFence = { ...outputHead, token: z.string().min(16).max(128) };
const StepError = z.object({ code: z.string().min(1).max(64), message: z.string().max(2000), retryable: z.boolean().default(true) });

/**
 * `{root}/{taskId}/output/{stepId}/{agentId}`: a step's result handed in by its assignee, fenced
 * by epoch and token. Only the orchestrator reads it.
 */
export const StepOutput = z.discriminatedUnion('ok', [
  z.object({ ...outputFence, ok: z.literal(true), output: Artifacts }),
  z.object({ ...outputFence, ok: z.literal(false), error: StepError }),
]);
export type StepOutput = z.infer<typeof StepOutput>;

/**
 * `clients/{clientId}/{root}/{taskId}/output/{stepId}` (retained): a step output the orchestrator
 * accepted, republished for the task's owner without its fencing token.
 */
export const AcceptedOutput = z.discriminatedUnion('ok', [
  z.object({ ...outputHead, ok: z.literal(true), output: Artifacts }),
  z.object({ ...outputHead, ok: z.literal(false), error: StepError }),
]);
export type AcceptedOutput = z.infer<typeof AcceptedOutput>;

/**
 * `{root}/{taskId}/progress/{stepId}/{agentId}`: streaming progress (QoS 0, throttled), handed in by
 * the assignee; the orchestrator relays the live assignee's to `clients/{owner}/{root}/{taskId}/progress/{stepId}`.
 */
export const Progress = z.object({
  v: version,
  taskId: Id,
  stepId: Id,
  epoch: z.number().int().positive(),
  /** 0..1 when known. */
  fraction: z.number().min(0).max(1).optional(),
  message: z.string().max(2000).optional(),
  at: Timestamp.optional(),
});
export type Progress = z.infer<typeof Progress>;

/** `tasks/{taskId}/cancel`: must present the secret whose SHA-256 the request committed to. */
export const CancelRequest = z.object({
  v: version,
  secret: z.string().min(8).max(256),
  reason: z.string().max(2000).optional(),
});
export type CancelRequest = z.infer<typeof CancelRequest>;

/** Task states, named as in A2A. */
export const TaskState = z.enum(['submitted', 'working', 'completed', 'failed', 'canceled', 'rejected']);
export type TaskState = z.infer<typeof TaskState>;

/** Finer internal phase of a live task. */
export const TaskPhase = z.enum(['collecting-proposals', 'planning', 'executing', 'done']);
export type TaskPhase = z.infer<typeof TaskPhase>;

/** Step states. */
export const StepState = z.enum(['pending', 'assigned', 'completed', 'failed', 'canceled']);
export type StepState = z.infer<typeof StepState>;

/** One error recorded on a task. */
export const TaskErrorEntry = z.object({
  code: z.string(),
  message: z.string(),
  stepId: Id.optional(),
  agentId: Id.optional(),
  at: Timestamp,
});
export type TaskErrorEntry = z.infer<typeof TaskErrorEntry>;

/** A plan step as shown in the task status. */
export const StatusStep = z.object({
  id: Id,
  skill: SkillName,
  consumes: z.array(ArtifactName),
  produces: z.array(ArtifactName),
  state: StepState,
  agentId: Id.optional(),
  pool: Id.optional(),
  epoch: z.number().int().nonnegative(),
  attempts: z.number().int().nonnegative(),
  estUsd: z.number().nonnegative(),
  estMs: z.number().nonnegative(),
  /** The agent that proposed the step. */
  proposedBy: Id,
});
export type StatusStep = z.infer<typeof StatusStep>;

/** `tasks/{taskId}/status` (retained): the task snapshot. */
export const TaskStatus = z.object({
  v: version,
  taskId: Id,
  state: TaskState,
  phase: TaskPhase,
  plan: z
    .object({ steps: z.array(StatusStep), estUsd: z.number().nonnegative(), estMs: z.number().nonnegative() })
    .optional(),
  /**
   * Set while the proposal window has closed without a satisfiable plan and the task waits for
   * bids from agents that may still answer (within its deadline and the orchestrator's wait limit).
   */
  waitingForBids: z
    .object({ agents: z.array(Id), since: Timestamp, reasons: z.array(z.string()) })
    .optional(),
  errors: z.array(TaskErrorEntry),
  /** Monotonic; a watcher ignores a snapshot older than one it has. */
  version: z.number().int().nonnegative(),
  updatedAt: Timestamp,
});
export type TaskStatus = z.infer<typeof TaskStatus>;

/** `tasks/{taskId}/result` (retained): final outputs and usage. */
export const TaskResult = z.object({
  v: version,
  taskId: Id,
  state: z.enum(['completed', 'failed', 'canceled', 'rejected']),
  /** The wanted artifacts (completed tasks only). */
  outputs: Artifacts,
  usage: z.object({ usd: z.number().nonnegative(), ms: z.number().nonnegative(), steps: z.number().int().nonnegative() }),
  reason: z.string().max(4000).optional(),
  completedAt: Timestamp,
});
export type TaskResult = z.infer<typeof TaskResult>;

// ---------------------------------------------------------------------------------------------
// Decoding

function formatIssues(error: z.ZodError, input: unknown): string[] {
  return error.issues.flatMap((i) => expandIssue(i, [], input));
}

/**
 * One line per issue. A union that matched no branch (a proposal is a bid or a decline) says only
 * "Invalid input" at its own path; the issues of the branch the input was closest to are reported
 * instead, so the message names the field that is actually wrong.
 */
function expandIssue(issue: z.core.$ZodIssue, prefix: readonly PropertyKey[], input: unknown): string[] {
  const path = [...prefix, ...issue.path];
  if (issue.code === 'invalid_union' && issue.errors.length > 0) {
    const branch = closestBranch(issue.errors, valueAt(input, path));
    if (branch !== undefined && branch.some((i) => i.path.length > 0)) return branch.flatMap((i) => expandIssue(i, path, input));
    // Every branch refused the value itself (wrong type): say what each would have taken.
    const messages = [...new Set(issue.errors.flat().filter((i) => i.path.length === 0).map((i) => i.message))];
    if (messages.length > 0) return [`${path.length > 0 ? path.map(String).join('.') : '(root)'}: ${messages.join(' or ')}`];
  }
  return [`${path.length > 0 ? path.map(String).join('.') : '(root)'}: ${issue.message}`];
}

/** The branch with the fewest missing fields, then the deepest issue, then the fewest issues. */
function closestBranch(branches: readonly (readonly z.core.$ZodIssue[])[], value: unknown): readonly z.core.$ZodIssue[] | undefined {
  const score = (issues: readonly z.core.$ZodIssue[]): [number, number, number] => [
    issues.filter((i) => i.path.length > 0 && valueAt(value, i.path) === undefined).length,
    -Math.max(0, ...issues.map((i) => i.path.length)),
    issues.length,
  ];
  let best: { issues: readonly z.core.$ZodIssue[]; score: [number, number, number] } | undefined;
  for (const issues of branches) {
    const s = score(issues);
    if (best === undefined || s[0] < best.score[0] || (s[0] === best.score[0] && (s[1] < best.score[1] || (s[1] === best.score[1] && s[2] < best.score[2])))) {
      best = { issues, score: s };
    }
  }
  return best?.issues;
}

function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
  let v = value;
  for (const key of path) {
    if (v === null || typeof v !== 'object' || !Object.prototype.hasOwnProperty.call(v, key)) return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

/**
 * Decodes a raw MQTT payload (bytes or string) into a typed message, or throws a specific error:
 * PayloadTooLargeError, ValidationError('invalid-json') or ValidationError('invalid-payload')
 * listing every field that is wrong. `what` names the message in the error text.
 */
export function decodePayload<S extends z.ZodType>(schema: S, raw: string | Uint8Array, what: string): z.infer<S> {
  const bytes = typeof raw === 'string' ? Buffer.byteLength(raw, 'utf8') : raw.byteLength;
  if (bytes > MAX_PAYLOAD_BYTES) throw new PayloadTooLargeError(bytes, MAX_PAYLOAD_BYTES);
  const text = typeof raw === 'string' ? raw : new TextDecoder('utf-8', { fatal: false }).decode(raw);
  // JSON.parse copes with any depth, but zod's z.json() (artifacts), canonicalJson and
  // structuredClone recurse: a 128 KB payload of nested brackets overflowed the stack in validation.
  const depth = jsonNestingDepth(text, MAX_JSON_DEPTH);
  if (depth > MAX_JSON_DEPTH) {
    throw new ValidationError('invalid-payload', `${what} is invalid: (root): JSON nests deeper than ${MAX_JSON_DEPTH} levels`, [`(root): nested deeper than ${MAX_JSON_DEPTH} levels`]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ValidationError('invalid-json', `${what} is not valid JSON: ${(err as Error).message}`, [], { cause: err });
  }
  return parseMessage(schema, json, what);
}

/** Deepest array/object nesting accepted in a payload; far beyond any real artifact, far below the stack limit. */
export const MAX_JSON_DEPTH = 256;

/**
 * The bracket nesting depth of JSON `text` (brackets inside strings do not count), counting no
 * further than `stopAbove + 1`. Works on malformed text too: it only scans.
 */
export function jsonNestingDepth(text: string, stopAbove = Number.MAX_SAFE_INTEGER): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i += 1; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      depth += 1;
      if (depth > max) {
        max = depth;
        if (max > stopAbove) return max;
      }
    } else if (c === 0x5d || c === 0x7d) depth -= 1;
  }
  return max;
}

/** Validates an already-parsed JSON value against `schema`; throws ValidationError listing every problem. */
export function parseMessage<S extends z.ZodType>(schema: S, json: unknown, what: string): z.infer<S> {
  let result: z.ZodSafeParseResult<z.infer<S>>;
  try {
    result = schema.safeParse(json);
  } catch (err) {
    // Values built in code (not decoded text) can still nest deep enough to overflow zod's recursion.
    if (err instanceof RangeError) {
      throw new ValidationError('invalid-payload', `${what} is invalid: (root): nested too deeply to validate`, ['(root): nested too deeply to validate'], { cause: err });
    }
    throw err;
  }
  if (!result.success) {
    const issues = formatIssues(result.error, json);
    throw new ValidationError('invalid-payload', `${what} is invalid: ${issues.join('; ')}`, issues);
  }
  return result.data;
}
