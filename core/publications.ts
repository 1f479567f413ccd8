/**
 * The publication catalogue: every kind of message core publishes, the topics of that kind, and
 * whether it is published retained — plus which core entry point may publish which kinds.
 *
 * It is the one source for the orchestrator's publish rights: CDK grants each Lambda role
 * iot:Publish (and iot:RetainPublish) from it (infra/constructs/orchestrator-function.ts), and the
 * local data-plane shim refuses any publish outside the calling function's entry (local/), so a
 * topic core starts publishing without a catalogue entry fails in the tests as it would on AWS.
 *
 * Topic filters are derived from the builders in core/topics.ts (never written out here), so a
 * change to the topic tree moves the grants with it. Pure data and functions, no I/O.
 */
import { TASK_ROOTS } from './data-classes';
import { parseTopic, topicMatches, topics, type ParsedTopic } from './topics';

/** A kind of message core publishes; named after the kind `parseTopic` gives its topic. */
export type PublicationKind =
  | 'task-request' | 'task-status' | 'task-assign' | 'task-pool'
  | 'client-status' | 'client-result' | 'client-output' | 'client-progress' | 'client-errors' | 'agent-errors';

/** One entry of the catalogue. */
export interface Publication {
  readonly kind: PublicationKind;
  /** Published with RETAIN: IoT Core then also checks iot:RetainPublish. */
  readonly retained: boolean;
  /** MQTT topic filters covering every topic of the kind, in every task root. */
  readonly filters: readonly string[];
  readonly description: string;
}

/**
 * A valid id that no topic word equals: the builders are called with it and each level equal to
 * it becomes `+`. `:` keeps it out of every fixed topic word.
 */
const ANY_ID = 'any:id';

/** The filter of the topics `build` makes, with every id level as `+`. */
function filterOf(build: (id: string) => string): string {
  return build(ANY_ID).split('/').map((level) => (level === ANY_ID ? '+' : level)).join('/');
}

/** One filter per task root. */
function perRoot(build: (id: string, root: string) => string): string[] {
  return TASK_ROOTS.map((root) => filterOf((id) => build(id, root)));
}

function entry(kind: PublicationKind, retained: boolean, filters: string[], description: string): Publication {
  // The builders and the parser must agree on the kind, or the catalogue describes a topic core does not parse.
  for (const filter of filters) {
    const parsed = parseTopic(filter.split('/').map((level) => (level === '+' ? ANY_ID : level)).join('/'));
    if (parsed.kind !== kind) throw new Error(`publication ${kind}: filter ${filter} parses as ${parsed.kind}`);
  }
  return { kind, retained, filters, description };
}

/** Every kind of message core publishes. */
export const PUBLICATIONS: Readonly<Record<PublicationKind, Publication>> = {
  'task-request': entry('task-request', false, perRoot((id, root) => topics.taskRequest(id, root)), 'the call for bids, published once intake validated a request'),
  'task-status': entry('task-status', true, perRoot((id, root) => topics.taskStatus(id, root)), "the agents' slim task status; an empty payload clears it after retention"),
  'task-assign': entry('task-assign', false, perRoot((id, root) => topics.taskAssign(id, id, root)), 'a step assigned to one agent'),
  'task-pool': entry('task-pool', false, perRoot((id, root) => topics.taskPool(id, id, root)), "a step offered to a pool's members (no token, no inputs)"),
  'client-status': entry('client-status', true, perRoot((id, root) => topics.clientStatus(id, id, root)), "the owner's task snapshot; an empty payload clears it after retention"),
  'client-result': entry('client-result', true, perRoot((id, root) => topics.clientResult(id, id, root)), 'the final result (or a rejection); an empty payload clears it after retention'),
  'client-output': entry('client-output', true, perRoot((id, root) => topics.clientOutput(id, id, id, root)), 'an accepted step output republished for the owner; cleared after retention'),
  'client-progress': entry('client-progress', false, perRoot((id, root) => topics.clientProgress(id, id, id, root)), "the live assignee's progress relayed to the owner"),
  'client-errors': entry('client-errors', false, [filterOf((id) => topics.clientErrors(id))], 'why a message a client sent was refused'),
  'agent-errors': entry('agent-errors', false, [filterOf((id) => topics.agentErrors(id))], 'why a message an identity sent was refused'),
};

/** What a stored task outbox can hold: task-machine.ts enqueues only these kinds. */
const OUTBOX: readonly PublicationKind[] = ['task-request', 'task-status', 'task-assign', 'task-pool', 'client-status', 'client-result', 'client-output'];
/** A refusal notice (core/inbound.ts `notifyAgent`, `refuseClient`). */
const NOTICE: readonly PublicationKind[] = ['agent-errors', 'client-errors'];

/**
 * What each core entry point may publish. Any entry point that loads a task may flush the rest of
 * its stored outbox (a redelivery finishing what an earlier delivery saved but did not publish),
 * so it may publish every outbox kind, whatever its own transition emits; one that refuses a
 * message with a notice also publishes `agent-errors`.
 */
export const ENTRY_POINT_PUBLICATIONS = {
  /** Rejections, a new task's status, a duplicate's stored outbox, a notice to the sender of a clashing request. */
  'orchestrator.onRequest': [...OUTBOX, ...NOTICE],
  'orchestrator.onProposal': [...OUTBOX, ...NOTICE],
  'orchestrator.onOutput': [...OUTBOX, ...NOTICE],
  /** A won claim assigns the step to the claimant; a refused one is told on the claimant's errors topic. */
  'orchestrator.onClaim': [...OUTBOX, ...NOTICE],
  /** Relays the live assignee's progress; nothing stored, no outbox. */
  'orchestrator.onProgress': ['client-progress', ...NOTICE],
  'orchestrator.onCancel': [...OUTBOX, ...NOTICE],
  /** Windows, leases, deadlines, dispatch retries and retention (which clears outputs). */
  'orchestrator.onTimer': [...OUTBOX],
  'orchestrator.onAgentGone': [...OUTBOX],
  'orchestrator.sweep': [...OUTBOX],
  'registry.onResume': [...OUTBOX, ...NOTICE],
  'registry.onStatus': [...OUTBOX, ...NOTICE],
  'registry.onTelemetry': [...NOTICE],
  'registry.onPresence': [...OUTBOX],
} as const satisfies Record<string, readonly PublicationKind[]>;

/** A core entry point a handler calls. */
export type EntryPoint = keyof typeof ENTRY_POINT_PUBLICATIONS;

/** The kinds the given entry points may publish, deduplicated, in catalogue order. */
export function publicationsOf(entryPoints: readonly EntryPoint[]): Publication[] {
  const kinds = new Set<PublicationKind>();
  for (const e of entryPoints) {
    const listed: readonly PublicationKind[] | undefined = ENTRY_POINT_PUBLICATIONS[e];
    if (listed === undefined) throw new Error(`unknown entry point "${e}"; expected one of ${Object.keys(ENTRY_POINT_PUBLICATIONS).join(', ')}`);
    for (const k of listed) kinds.add(k);
  }
  return Object.values(PUBLICATIONS).filter((p) => kinds.has(p.kind));
}


/**
 * Why `publications` do not cover publishing `topic` (with `retain`), or undefined when they do:
 * the topic must match a filter of one of them, and a retained publish needs a retained kind.
 */
export function publishRefusal(publications: readonly Publication[], topic: string, retain: boolean): string | undefined {
  const matching = publications.filter((p) => p.filters.some((f) => topicMatches(f, topic)));
  if (matching.length === 0) return `no granted publication kind covers ${topic} (granted: ${publications.map((p) => p.kind).join(', ') || 'none'})`;
  if (retain && !matching.some((p) => p.retained)) return `${topic} is granted only without RETAIN (${matching.map((p) => p.kind).join(', ')})`;
  return undefined;
}

/**
 * Kinds of topic published with RETAIN by anybody (core or agents), as the wire contract says
 * (docs/PROTOCOL.md): IoT Core authorises those with iot:RetainPublish as well as iot:Publish.
 */
export const RETAINED_TOPIC_KINDS: ReadonlySet<ParsedTopic['kind']> = new Set<ParsedTopic['kind']>([
  'agent-resume', 'agent-status', ...Object.values(PUBLICATIONS).filter((p) => p.retained).map((p) => p.kind),
]);
