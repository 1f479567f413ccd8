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

/** Topic builders. Every argument is validated; `taskRoot` defaults to `tasks`. */
export const topics = {
  agentResume: (agentId: string) => `agents/${validateId('agentId', agentId)}/resume`,
  agentStatus: (agentId: string) => `agents/${validateId('agentId', agentId)}/status`,
  agentTelemetry: (agentId: string) => `agents/${validateId('agentId', agentId)}/telemetry`,
  agentErrors: (agentId: string) => `agents/${validateId('agentId', agentId)}/errors`,
  taskRequest: (taskId: string, taskRoot = DEFAULT_TASK_ROOT) => `${root(taskRoot)}/${validateId('taskId', taskId)}/request`,
  taskProposal: (taskId: string, agentId: string, taskRoot = DEFAULT_TASK_ROOT) =>
    `${root(taskRoot)}/${validateId('taskId', taskId)}/proposal/${validateId('agentId', agentId)}`,
  taskAssign: (taskId: string, agentId: string, taskRoot = DEFAULT_TASK_ROOT) =>
    `${root(taskRoot)}/${validateId('taskId', taskId)}/assign/${validateId('agentId', agentId)}`,
  taskPool: (taskId: string, pool: string, taskRoot = DEFAULT_TASK_ROOT) =>
    `${root(taskRoot)}/${validateId('taskId', taskId)}/pool/${validateId('pool', pool)}`,
  taskProgress: (taskId: string, stepId: string, taskRoot = DEFAULT_TASK_ROOT) =>
    `${root(taskRoot)}/${validateId('taskId', taskId)}/progress/${validateId('stepId', stepId)}`,
  taskOutput: (taskId: string, stepId: string, taskRoot = DEFAULT_TASK_ROOT) =>
    `${root(taskRoot)}/${validateId('taskId', taskId)}/output/${validateId('stepId', stepId)}`,
  taskStatus: (taskId: string, taskRoot = DEFAULT_TASK_ROOT) => `${root(taskRoot)}/${validateId('taskId', taskId)}/status`,
  taskResult: (taskId: string, taskRoot = DEFAULT_TASK_ROOT) => `${root(taskRoot)}/${validateId('taskId', taskId)}/result`,
  taskCancel: (taskId: string, taskRoot = DEFAULT_TASK_ROOT) => `${root(taskRoot)}/${validateId('taskId', taskId)}/cancel`,
} as const;

/** Subscription filters (wildcards). On IoT Core these never deliver retained messages. */
export const filters = {
  allResumes: 'agents/+/resume',
  allAgentStatus: 'agents/+/status',
  allTelemetry: 'agents/+/telemetry',
  requests: (taskRoot = DEFAULT_TASK_ROOT) => `${root(taskRoot)}/+/request`,
  proposals: (taskRoot = DEFAULT_TASK_ROOT) => `${root(taskRoot)}/+/proposal/+`,
  outputs: (taskRoot = DEFAULT_TASK_ROOT) => `${root(taskRoot)}/+/output/+`,
  cancels: (taskRoot = DEFAULT_TASK_ROOT) => `${root(taskRoot)}/+/cancel`,
  /** An agent's own assignments across all tasks. */
  assignmentsFor: (agentId: string, taskRoot = DEFAULT_TASK_ROOT) => `${root(taskRoot)}/+/assign/${validateId('agentId', agentId)}`,
  /** A pool's steps, load-balanced across the pool's members by a shared subscription. */
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
  | { kind: 'task-result'; taskRoot: string; taskId: string }
  | { kind: 'task-cancel'; taskRoot: string; taskId: string }
  | { kind: 'task-proposal'; taskRoot: string; taskId: string; agentId: string }
  | { kind: 'task-assign'; taskRoot: string; taskId: string; agentId: string }
  | { kind: 'task-pool'; taskRoot: string; taskId: string; pool: string }
  | { kind: 'task-progress'; taskRoot: string; taskId: string; stepId: string }
  | { kind: 'task-output'; taskRoot: string; taskId: string; stepId: string }
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

  if (first !== undefined && TASK_ROOTS.includes(first)) {
    const taskRoot = first;
    const taskId = checked('taskId', second, topic);
    if (parts.length === 3) {
      switch (third) {
        case 'request': return { kind: 'task-request', taskRoot, taskId };
        case 'status': return { kind: 'task-status', taskRoot, taskId };
        case 'result': return { kind: 'task-result', taskRoot, taskId };
        case 'cancel': return { kind: 'task-cancel', taskRoot, taskId };
        default: throw new TopicParseError(`unknown task topic "${third}" in "${topic}"`);
      }
    }
    if (parts.length === 4) {
      switch (third) {
        case 'proposal': return { kind: 'task-proposal', taskRoot, taskId, agentId: checked('agentId', fourth, topic) };
        case 'assign': return { kind: 'task-assign', taskRoot, taskId, agentId: checked('agentId', fourth, topic) };
        case 'pool': return { kind: 'task-pool', taskRoot, taskId, pool: checked('pool', fourth, topic) };
        case 'progress': return { kind: 'task-progress', taskRoot, taskId, stepId: checked('stepId', fourth, topic) };
        case 'output': return { kind: 'task-output', taskRoot, taskId, stepId: checked('stepId', fourth, topic) };
        default: throw new TopicParseError(`unknown task topic "${third}" in "${topic}"`);
      }
    }
    throw new TopicParseError(`task topic "${topic}" has ${parts.length} levels; expected 3 or 4`);
  }
  throw new TopicParseError(`"${topic}" is not a Porchlight topic (first level "${first}")`);
}
