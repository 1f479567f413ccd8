/**
 * Every Porchlight topic is built and parsed here and nowhere else (ARCHITECTURE §2).
 *
 * Ids are validated before they are spliced into a topic or a policy: an id with `/`, `+` or `#`
 * would change which topics a policy grants, and a leading `$` collides with broker-reserved
 * trees such as `$aws/` and `$SYS/`.
 */
import { TopicParseError, InvalidIdError } from './errors';
import { DEFAULT_TASK_ROOT, TASK_ROOTS } from './data-classes';

/** Longest id accepted anywhere (AWS IoT thing names are at most 128 characters). */
export const MAX_ID_LENGTH = 128;

/** Characters allowed in ids: AWS IoT thing-name characters, so an agent id can be a thing name. */
const ID_CHARS = /^[A-Za-z0-9_:-]+$/;

/** What an id names, used in error messages. */
export type IdKind = 'agentId' | 'taskId' | 'stepId' | 'pool' | 'clientId';

/**
 * Returns `id` unchanged when it can be spliced into a topic; throws InvalidIdError saying
 * exactly which rule it breaks otherwise.
 */
export function validateId(kind: IdKind, id: string): string {
  if (typeof id !== 'string' || id.length === 0) throw new InvalidIdError(`${kind} is empty`);
  if (id.length > MAX_ID_LENGTH) throw new InvalidIdError(`${kind} is ${id.length} characters; at most ${MAX_ID_LENGTH} are allowed`);
  if (id.startsWith('$')) throw new InvalidIdError(`${kind} "${id}" starts with '$', which is reserved for broker topics`);
  for (const ch of ['/', '+', '#']) {
    if (id.includes(ch)) throw new InvalidIdError(`${kind} "${id}" contains '${ch}', which would change the topic structure`);
  }
  if (!ID_CHARS.test(id)) {
    const bad = [...id].find((c) => !ID_CHARS.test(c)) ?? '';
    throw new InvalidIdError(`${kind} "${id}" contains ${JSON.stringify(bad)}; only letters, digits, '_', ':' and '-' are allowed`);
  }
  return id;
}

/** True when `id` would pass {@link validateId}. */
export function isValidId(id: string): boolean {
  try {
    validateId('taskId', id);
    return true;
  } catch {
    return false;
  }
}

function root(r: string): string {
  if (!TASK_ROOTS.includes(r)) throw new TopicParseError(`unknown task topic root "${r}"; expected one of ${TASK_ROOTS.join(', ')}`);
  return r;
}

/** First level of every client's own tree. */
export const CLIENTS_ROOT = 'clients';

/**
 * Topic builders. Every argument is validated; `taskRoot` defaults to `tasks`.
 *
 * Two trees per task (docs/PROTOCOL.md):
 * - the **client tree** `clients/{clientId}/{root}/{taskId}/…`, the submitting client's own:
 *   it publishes its request and cancel there (read by the orchestrator alone) and reads the
 *   status, result, outputs and progress the orchestrator republishes there. Nobody else's
 *   client id can be spliced in: the broker grants each client its own id only.
 * - the **agent tree** `{root}/{taskId}/…`: the call for bids, proposals, assignments, pool
 *   offers and the agent-facing status are here; agents hand claims, outputs and progress in on
 *   topics ending in their own id, which only the orchestrator reads.
 */
export const topics = {
  agentResume: (agentId: string) => `agents/${validateId('agentId', agentId)}/resume`,
  agentStatus: (agentId: string) => `agents/${validateId('agentId', agentId)}/status`,
  agentTelemetry: (agentId: string) => `agents/${validateId('agentId', agentId)}/telemetry`,
  agentErrors: (agentId: string) => `agents/${validateId('agentId', agentId)}/errors`,
  /** The call for bids: a validated request, published by the orchestrator where eligible agents read. */
  taskRequest: (taskId: string, taskRoot = DEFAULT_TASK_ROOT) => `${root(taskRoot)}/${validateId('taskId', taskId)}/request`,
  taskProposal: (taskId: string, agentId: string, taskRoot = DEFAULT_TASK_ROOT) =>
    `${root(taskRoot)}/${validateId('taskId', taskId)}/proposal/${validateId('agentId', agentId)}`,
  taskAssign: (taskId: string, agentId: string, taskRoot = DEFAULT_TASK_ROOT) =>
    `${root(taskRoot)}/${validateId('taskId', taskId)}/assign/${validateId('agentId', agentId)}`,
  /** A step offered to a pool (no fencing token, no inputs): only the pool's members read it. */
  taskPool: (taskId: string, pool: string, taskRoot = DEFAULT_TASK_ROOT) =>
    `${root(taskRoot)}/${validateId('taskId', taskId)}/pool/${validateId('pool', pool)}`,
  /** A pool member claims an offered step (read by the orchestrator only; the first valid claim wins). */
  taskClaim: (taskId: string, stepId: string, agentId: string, taskRoot = DEFAULT_TASK_ROOT) =>
    `${root(taskRoot)}/${validateId('taskId', taskId)}/claim/${validateId('stepId', stepId)}/${validateId('agentId', agentId)}`,
  /** An agent hands in a step's progress (read by the orchestrator only). */
  taskProgress: (taskId: string, stepId: string, agentId: string, taskRoot = DEFAULT_TASK_ROOT) =>
    `${root(taskRoot)}/${validateId('taskId', taskId)}/progress/${validateId('stepId', stepId)}/${validateId('agentId', agentId)}`,
  /** An agent hands in a step's output (read by the orchestrator only; never retained). */
  taskOutput: (taskId: string, stepId: string, agentId: string, taskRoot = DEFAULT_TASK_ROOT) =>
    `${root(taskRoot)}/${validateId('taskId', taskId)}/output/${validateId('stepId', stepId)}/${validateId('agentId', agentId)}`,
  /** The agent-facing status (retained): agents executing a step watch it for cancellation. */
  taskStatus: (taskId: string, taskRoot = DEFAULT_TASK_ROOT) => `${root(taskRoot)}/${validateId('taskId', taskId)}/status`,
  /** A client submits a task (read by the orchestrator only). */
  clientRequest: (clientId: string, taskId: string, taskRoot = DEFAULT_TASK_ROOT) => `${clientTask(clientId, taskId, taskRoot)}/request`,
  /** A client cancels its task (read by the orchestrator only). */
  clientCancel: (clientId: string, taskId: string, taskRoot = DEFAULT_TASK_ROOT) => `${clientTask(clientId, taskId, taskRoot)}/cancel`,
  /** The task's status as its client sees it (retained; orchestrator only). */
  clientStatus: (clientId: string, taskId: string, taskRoot = DEFAULT_TASK_ROOT) => `${clientTask(clientId, taskId, taskRoot)}/status`,
  /** The task's result (retained; orchestrator only). */
  clientResult: (clientId: string, taskId: string, taskRoot = DEFAULT_TASK_ROOT) => `${clientTask(clientId, taskId, taskRoot)}/result`,
  /** An accepted step output, republished for the client without its fencing token (retained; orchestrator only). */
  clientOutput: (clientId: string, taskId: string, stepId: string, taskRoot = DEFAULT_TASK_ROOT) =>
    `${clientTask(clientId, taskId, taskRoot)}/output/${validateId('stepId', stepId)}`,
  /** Progress of a step's live assignee, republished for the client (orchestrator only). */
  clientProgress: (clientId: string, taskId: string, stepId: string, taskRoot = DEFAULT_TASK_ROOT) =>
    `${clientTask(clientId, taskId, taskRoot)}/progress/${validateId('stepId', stepId)}`,
  /** Why the orchestrator refused something a client sent that has no task status of its own to say it on. */
  clientErrors: (clientId: string) => `${CLIENTS_ROOT}/${validateId('clientId', clientId)}/errors`,
} as const;

function clientTask(clientId: string, taskId: string, taskRoot: string): string {
  return `${CLIENTS_ROOT}/${validateId('clientId', clientId)}/${root(taskRoot)}/${validateId('taskId', taskId)}`;
}

/** Subscription filters (wildcards). On IoT Core these never deliver retained messages. */
export const filters = {
  allResumes: 'agents/+/resume',
  allAgentStatus: 'agents/+/status',
  allTelemetry: 'agents/+/telemetry',
  /** Calls for bids (agents). */
  requests: (taskRoot = DEFAULT_TASK_ROOT) => `${root(taskRoot)}/+/request`,
  proposals: (taskRoot = DEFAULT_TASK_ROOT) => `${root(taskRoot)}/+/proposal/+`,
  /** Outputs handed in by agents (orchestrator). */
  outputs: (taskRoot = DEFAULT_TASK_ROOT) => `${root(taskRoot)}/+/output/+/+`,
  /** Claims of pool steps handed in by agents (orchestrator). */
  claims: (taskRoot = DEFAULT_TASK_ROOT) => `${root(taskRoot)}/+/claim/+/+`,
  /** Progress handed in by agents (orchestrator). */
  progress: (taskRoot = DEFAULT_TASK_ROOT) => `${root(taskRoot)}/+/progress/+/+`,
  /** Every client's submissions (orchestrator). */
  clientRequests: (taskRoot = DEFAULT_TASK_ROOT) => `${CLIENTS_ROOT}/+/${root(taskRoot)}/+/request`,
  /** Every client's cancellations (orchestrator). */
  clientCancels: (taskRoot = DEFAULT_TASK_ROOT) => `${CLIENTS_ROOT}/+/${root(taskRoot)}/+/cancel`,
  /** The results of one client's tasks under one root. */
  clientResults: (clientId: string, taskRoot = DEFAULT_TASK_ROOT) => `${CLIENTS_ROOT}/${validateId('clientId', clientId)}/${root(taskRoot)}/+/result`,
  /** Everything the orchestrator republishes for one client's tasks under one root. */
  clientTasks: (clientId: string, taskRoot = DEFAULT_TASK_ROOT) => `${CLIENTS_ROOT}/${validateId('clientId', clientId)}/${root(taskRoot)}/#`,
  /** An agent's own assignments across all tasks. */
  assignmentsFor: (agentId: string, taskRoot = DEFAULT_TASK_ROOT) => `${root(taskRoot)}/+/assign/${validateId('agentId', agentId)}`,
  /** A pool's offers, every member receiving each one. */
  pool: (pool: string, taskRoot = DEFAULT_TASK_ROOT) => `${root(taskRoot)}/+/pool/${validateId('pool', pool)}`,
  /** A pool's offers, load-balanced across the pool's members by a shared subscription. */
  sharedPool: (pool: string, taskRoot = DEFAULT_TASK_ROOT) =>
    `$share/${validateId('pool', pool)}/${root(taskRoot)}/+/pool/${validateId('pool', pool)}`,
  /** IoT Core lifecycle events (AWS only). */
  presence: '$aws/events/presence/+/+',
} as const;

/** A topic, understood. `taskRoot` is the first level of a task topic (`tasks`, `patient-data`, …). */
export type ParsedTopic =
  | { kind: 'agent-resume'; agentId: string }
  | { kind: 'agent-status'; agentId: string }
  | { kind: 'agent-telemetry'; agentId: string }
  | { kind: 'agent-errors'; agentId: string }
  | { kind: 'task-request'; taskRoot: string; taskId: string }
  | { kind: 'task-status'; taskRoot: string; taskId: string }
  | { kind: 'task-proposal'; taskRoot: string; taskId: string; agentId: string }
  | { kind: 'task-assign'; taskRoot: string; taskId: string; agentId: string }
  | { kind: 'task-pool'; taskRoot: string; taskId: string; pool: string }
  | { kind: 'task-progress'; taskRoot: string; taskId: string; stepId: string; agentId: string }
  | { kind: 'task-output'; taskRoot: string; taskId: string; stepId: string; agentId: string }
  | { kind: 'task-claim'; taskRoot: string; taskId: string; stepId: string; agentId: string }
  | { kind: 'client-request'; clientId: string; taskRoot: string; taskId: string }
  | { kind: 'client-cancel'; clientId: string; taskRoot: string; taskId: string }
  | { kind: 'client-status'; clientId: string; taskRoot: string; taskId: string }
  | { kind: 'client-result'; clientId: string; taskRoot: string; taskId: string }
  | { kind: 'client-output'; clientId: string; taskRoot: string; taskId: string; stepId: string }
  | { kind: 'client-progress'; clientId: string; taskRoot: string; taskId: string; stepId: string }
  | { kind: 'client-errors'; clientId: string }
  | { kind: 'presence'; event: 'connected' | 'disconnected'; clientId: string };

function checked(kind: Parameters<typeof validateId>[0], id: string | undefined, topic: string): string {
  if (id === undefined) throw new TopicParseError(`topic "${topic}" is missing its ${kind}`);
  try {
    return validateId(kind, id);
  } catch (err) {
    throw new TopicParseError(`topic "${topic}": ${(err as Error).message}`, { cause: err });
  }
}

/** Parses any Porchlight topic; throws TopicParseError saying what does not fit. */
export function parseTopic(topic: string): ParsedTopic {
  if (typeof topic !== 'string' || topic.length === 0) throw new TopicParseError('topic is empty');
  const parts = topic.split('/');
  const [first, second, third, fourth, fifth] = parts;

  if (first === '$aws' && second === 'events' && third === 'presence' && parts.length === 5) {
    if (fourth !== 'connected' && fourth !== 'disconnected') throw new TopicParseError(`unknown presence event "${fourth}" in "${topic}"`);
    return { kind: 'presence', event: fourth, clientId: checked('clientId', fifth, topic) };
  }

  if (first === 'agents') {
    if (parts.length !== 3) throw new TopicParseError(`agent topic "${topic}" must have 3 levels, has ${parts.length}`);
    const agentId = checked('agentId', second, topic);
    switch (third) {
      case 'resume': return { kind: 'agent-resume', agentId };
      case 'status': return { kind: 'agent-status', agentId };
      case 'telemetry': return { kind: 'agent-telemetry', agentId };
      case 'errors': return { kind: 'agent-errors', agentId };
      default: throw new TopicParseError(`unknown agent topic "${third}" in "${topic}"`);
    }
  }

  if (first === CLIENTS_ROOT) {
    const clientId = checked('clientId', second, topic);
    if (parts.length === 3) {
      if (third === 'errors') return { kind: 'client-errors', clientId };
      throw new TopicParseError(`unknown client topic "${third}" in "${topic}"`);
    }
    if (third === undefined || !TASK_ROOTS.includes(third)) {
      throw new TopicParseError(`client topic "${topic}": unknown task root "${third}"; expected one of ${TASK_ROOTS.join(', ')}`);
    }
    const taskRoot = third;
    const taskId = checked('taskId', fourth, topic);
    const [, , , , what, step] = parts;
    if (parts.length === 5) {
      switch (what) {
        case 'request': return { kind: 'client-request', clientId, taskRoot, taskId };
        case 'cancel': return { kind: 'client-cancel', clientId, taskRoot, taskId };
        case 'status': return { kind: 'client-status', clientId, taskRoot, taskId };
        case 'result': return { kind: 'client-result', clientId, taskRoot, taskId };
        default: throw new TopicParseError(`unknown client task topic "${what}" in "${topic}"`);
      }
    }
    if (parts.length === 6) {
      switch (what) {
        case 'output': return { kind: 'client-output', clientId, taskRoot, taskId, stepId: checked('stepId', step, topic) };
        case 'progress': return { kind: 'client-progress', clientId, taskRoot, taskId, stepId: checked('stepId', step, topic) };
        default: throw new TopicParseError(`unknown client task topic "${what}" in "${topic}"`);
      }
    }
    throw new TopicParseError(`client task topic "${topic}" has ${parts.length} levels; expected 5 or 6`);
  }

  if (first !== undefined && TASK_ROOTS.includes(first)) {
    const taskRoot = first;
    const taskId = checked('taskId', second, topic);
    if (parts.length === 3) {
      switch (third) {
        case 'request': return { kind: 'task-request', taskRoot, taskId };
        case 'status': return { kind: 'task-status', taskRoot, taskId };
        default: throw new TopicParseError(`unknown task topic "${third}" in "${topic}"`);
      }
    }
    if (parts.length === 4) {
      switch (third) {
        case 'proposal': return { kind: 'task-proposal', taskRoot, taskId, agentId: checked('agentId', fourth, topic) };
        case 'assign': return { kind: 'task-assign', taskRoot, taskId, agentId: checked('agentId', fourth, topic) };
        case 'pool': return { kind: 'task-pool', taskRoot, taskId, pool: checked('pool', fourth, topic) };
        default: throw new TopicParseError(`unknown task topic "${third}" in "${topic}"`);
      }
    }
    if (parts.length === 5) {
      const agentId = checked('agentId', fifth, topic);
      switch (third) {
        case 'progress': return { kind: 'task-progress', taskRoot, taskId, stepId: checked('stepId', fourth, topic), agentId };
        case 'output': return { kind: 'task-output', taskRoot, taskId, stepId: checked('stepId', fourth, topic), agentId };
        case 'claim': return { kind: 'task-claim', taskRoot, taskId, stepId: checked('stepId', fourth, topic), agentId };
        default: throw new TopicParseError(`unknown task topic "${third}" in "${topic}"`);
      }
    }
    throw new TopicParseError(`task topic "${topic}" has ${parts.length} levels; expected 3, 4 or 5`);
  }
  throw new TopicParseError(`"${topic}" is not a Porchlight topic (first level "${first}")`);
}

/**
 * True when `topic` matches the MQTT topic filter `filter` (`+` one level, `#` the rest; wildcards
 * at the first level do not match topics starting with `$`).
 */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}
