/**
 * The trust-boundary probe matrix: one table of who may do what on which topic, decided twice —
 * by a real Mosquitto with the generated ACL and certificates from the local CA
 * (`probe-mosquitto.integration.test.ts`) and by evaluating the IoT policies and Lambda roles
 * CDK synthesizes (`probe-iot.unit.test.ts`). Both must reach the row's expected verdict, unless
 * the row is listed in {@link KNOWN_OPEN} for that broker, in which case both runners check it is
 * still open, so fixing it turns the test red until the entry is removed.
 *
 * How to add a row: pick (or add) an identity in {@link IDENTITIES}, then append to
 * {@link ROWS} `can(identity, action, target, why)` for a right or `cannot(…)` for an attack
 * that must fail. Actions:
 * - `connect`: target is a client id; allowed means the connection holds that client id, taking
 *   over a session already connected with it (the identity's own id must be allowed). The client
 *   id must be one of the identities, whose own connection is the session that is taken over.
 * - `publish` / `publish-retained`: target is a topic; allowed means a privileged witness
 *   subscribed to `#` receives it (with the retain flag for `publish-retained`). `{ empty: true }`
 *   publishes an empty payload, which erases a retained message.
 * - `subscribe`: target is a topic filter; allowed means SUBACK grants it.
 * - `receive`: target is a topic, `{ via }` the filter the identity subscribes with (default:
 *   the topic itself); allowed means a message a witness publishes on the topic reaches it.
 * Functions' data-plane publishes go to {@link FUNCTION_ROWS} (AWS only). An attack the current
 * model does not block gets a `cannot` row plus an entry in {@link KNOWN_OPEN}.
 *
 * Names used by the rows: task `t1` belongs to client-1, its step `s1` is assigned to agent-a,
 * which is a member of pool `gpu`; task `t2` belongs to client-2, its step `s1` is assigned to
 * agent-b, and its pool `cpu` has no member among the probe agents; `t3` is a request carrying
 * data class `phi` that was published under `tasks/` by mistake; `patient-data/t9` belongs to
 * client-g and its step `s1` is assigned to agent-g.
 */
import type { Role } from '../../core/policy';

/** The brokers the matrix runs on. */
export type Broker = 'mosquitto' | 'iot';

/** An identity the probes act as. */
export interface ProbeIdentity {
  /** Certificate CN = thing name = MQTT username and client id. */
  readonly id: string;
  readonly role: Role;
  /** Accreditation labels: the local CA's registry locally, `accredit-<label>` thing groups on AWS. */
  readonly accreditations: readonly string[];
  /**
   * `websocket`: the read-only browser view, which logs in with a password on Mosquitto's
   * WebSocket listener (no certificate). On AWS it is evaluated as an observer thing.
   * @default 'tls'
   */
  readonly transport?: 'tls' | 'websocket';
  /**
   * Which parts of the role's IoT policy are attached to the certificate on AWS (all must be:
   * this models a registration that attached only the first). No effect on Mosquitto.
   * @default 'all'
   */
  readonly iotPolicyParts?: 'all' | 'first';
}

/** The identities of the matrix, by id. */
export const IDENTITIES: Readonly<Record<string, ProbeIdentity>> = Object.fromEntries(
  ([
    { id: 'agent-a', role: 'agent', accreditations: [] },
    { id: 'agent-b', role: 'agent', accreditations: [] },
    { id: 'agent-g', role: 'agent', accreditations: ['gdpr'] },
    { id: 'agent-part1', role: 'agent', accreditations: [], iotPolicyParts: 'first' },
    { id: 'client-1', role: 'client', accreditations: [] },
    { id: 'client-2', role: 'client', accreditations: [] },
    { id: 'client-g', role: 'client', accreditations: ['gdpr'] },
    { id: 'porchlight-orchestrator', role: 'orchestrator', accreditations: [] },
    { id: 'observer-1', role: 'observer', accreditations: [] },
    { id: 'observer', role: 'observer', accreditations: [], transport: 'websocket' },
  ] satisfies ProbeIdentity[]).map((i) => [i.id, i]),
);

/** What a row asks an identity to do. */
export type ProbeAction = 'connect' | 'publish' | 'publish-retained' | 'subscribe' | 'receive';

/** One probe: an identity, an action on a target, the verdict it must get, and why. */
export interface ProbeRow {
  readonly identity: string;
  readonly action: ProbeAction;
  /** Client id (`connect`), topic (`publish…`, `receive`) or topic filter (`subscribe`). */
  readonly target: string;
  /** `receive`: the filter subscribed with. @default target */
  readonly via?: string;
  /** `publish-retained`: publish an empty payload (erase the retained message). */
  readonly empty?: boolean;
  readonly expect: 'allow' | 'deny';
  /** The right it exercises or the attack it tries. */
  readonly why: string;
}

type RowOptions = Pick<ProbeRow, 'via' | 'empty'>;

function can(identity: string, action: ProbeAction, target: string, why: string, options: RowOptions = {}): ProbeRow {
  return { identity, action, target, ...options, expect: 'allow', why };
}

function cannot(identity: string, action: ProbeAction, target: string, why: string, options: RowOptions = {}): ProbeRow {
  return { identity, action, target, ...options, expect: 'deny', why };
}

/** A row's key: unique in the matrix, used by {@link KNOWN_OPEN}. */
export function rowKey(row: Pick<ProbeRow, 'identity' | 'action' | 'target' | 'via' | 'empty'>): string {
  return `${row.identity} ${row.action}${row.empty ? ' (empty)' : ''} ${row.target}${row.via !== undefined ? ` via ${row.via}` : ''}`;
}

/** The matrix for the current policy model (core/policy.ts) and topic tree (core/topics.ts). */
export const ROWS: readonly ProbeRow[] = [
  // ---- agent: rights -------------------------------------------------------------------------
  can('agent-a', 'connect', 'agent-a', 'an agent connects with its own identity as client id'),
  can('agent-a', 'publish', 'agents/agent-a/telemetry', 'an agent reports its own telemetry'),
  can('agent-a', 'publish-retained', 'agents/agent-a/resume', 'an agent publishes its own résumé'),
  can('agent-a', 'publish-retained', 'agents/agent-a/status', 'an agent publishes its own status (and last will)'),
  can('agent-a', 'publish', 'tasks/t1/proposal/agent-a', 'an agent bids under its own name'),
  can('agent-a', 'publish', 'tasks/t1/progress/s1', 'the assignee reports progress on its step'),
  can('agent-a', 'publish-retained', 'tasks/t1/output/s1', "the assignee writes its step's output"),
  can('agent-a', 'subscribe', 'tasks/+/request', 'an agent watches for requests to bid on'),
  can('agent-a', 'subscribe', 'tasks/+/assign/agent-a', 'an agent subscribes to its own assignments'),
  can('agent-a', 'subscribe', '$share/gpu/tasks/+/pool/gpu', "a pool member shares its pool's steps"),
  can('agent-a', 'receive', 'tasks/t1/request', 'an agent reads requests to bid on', { via: 'tasks/+/request' }),
  can('agent-a', 'receive', 'tasks/t1/assign/agent-a', 'an agent reads its own assignment (with the fencing token)', { via: 'tasks/+/assign/agent-a' }),
  can('agent-a', 'receive', 'tasks/t1/pool/gpu', "a pool member takes its pool's steps", { via: '$share/gpu/tasks/+/pool/gpu' }),
  can('agent-a', 'receive', 'tasks/t1/status', 'an agent watches task status for cancellation'),
  can('agent-a', 'receive', 'agents/agent-a/errors', 'an agent reads why its own messages were rejected'),
  can('agent-part1', 'receive', 'tasks/t1/request', "the first part of the agent policy holds the agent's rights", { via: 'tasks/+/request' }),

  // ---- agent: attacks that fail --------------------------------------------------------------
  cannot('agent-a', 'connect', 'agent-b', "an agent takes over another agent's session"),
  cannot('agent-a', 'connect', 'porchlight-orchestrator', "an agent takes over the orchestrator's session"),
  cannot('agent-a', 'publish', 'tasks/t1/proposal/agent-b', 'an agent bids under another agent’s name'),
  cannot('agent-a', 'publish-retained', 'agents/agent-b/resume', "an agent forges another agent's résumé"),
  cannot('agent-a', 'publish-retained', 'agents/agent-b/status', 'an agent reports another agent offline to have its steps re-assigned'),
  cannot('agent-a', 'publish', 'tasks/t1/assign/agent-a', 'an agent assigns a step to itself'),
  cannot('agent-a', 'publish', 'tasks/t1/pool/gpu', 'an agent injects a pool step'),
  cannot('agent-a', 'publish-retained', 'tasks/t1/status', 'an agent forges task status'),
  cannot('agent-a', 'publish-retained', 'tasks/t1/result', 'an agent forges a task result'),
  cannot('agent-a', 'publish', 'agents/agent-b/errors', 'an agent forges rejection notices to another agent'),
  cannot('agent-a', 'publish', 'tasks/t1/request', 'an agent submits requests'),
  cannot('agent-a', 'publish', 'tasks/t1/cancel', 'an agent cancels tasks'),
  cannot('agent-a', 'subscribe', 'tasks/+/assign/+', "an agent subscribes to every agent's assignments"),
  cannot('agent-a', 'receive', 'tasks/t2/assign/agent-b', "an agent reads another agent's assignment and fencing token", { via: 'tasks/+/assign/+' }),
  cannot('agent-a', 'receive', 'tasks/t2/assign/agent-b', "an agent reads another agent's assignment by its exact topic"),
  cannot('agent-a', 'receive', 'tasks/t1/assign/status', 'an agent reads the assignment of an agent whose id is a topic word (`*` spans levels on IoT)'),
  cannot('agent-part1', 'receive', 'tasks/t1/assign/status', 'with only the first policy part attached, `tasks/*/status` reaches an assignment'),
  cannot('agent-part1', 'receive', 'tasks/t1/assign/request', 'with only the first policy part attached, `tasks/*/request` reaches an assignment'),
  cannot('agent-a', 'receive', 'tasks/t2/proposal/agent-b', "an agent reads its rivals' bids", { via: 'tasks/+/proposal/+' }),
  cannot('agent-a', 'receive', 'tasks/t1/result', 'an agent reads task results'),
  cannot('agent-a', 'receive', 'tasks/t1/cancel', 'an agent reads cancel secrets', { via: 'tasks/+/cancel' }),
  cannot('agent-a', 'receive', 'agents/agent-b/errors', "an agent reads another agent's rejection notices"),
  cannot('agent-a', 'receive', 'agents/agent-b/telemetry', "an agent reads another agent's telemetry", { via: 'agents/+/telemetry' }),
  cannot('agent-a', 'receive', 'patient-data/t9/request', 'an agent without the gdpr accreditation reads patient-data requests', { via: 'patient-data/+/request' }),

  // ---- agent: attacks the current model does not block (see KNOWN_OPEN) ----------------------
  cannot('agent-a', 'publish-retained', 'tasks/t2/output/s1', "any agent overwrites the retained output of a step assigned to another agent"),
  cannot('agent-a', 'publish-retained', 'tasks/t2/output/s1', "any agent erases the retained output of a step assigned to another agent", { empty: true }),
  cannot('agent-a', 'publish', 'tasks/t2/progress/s1', 'an agent that is not the assignee reports progress, which clients read'),
  cannot('agent-a', 'receive', 'tasks/t2/pool/cpu', "any agent reads every pool's steps (inputs and fencing token)", { via: 'tasks/+/pool/+' }),
  cannot('agent-a', 'receive', 'tasks/t2/pool/cpu', "any agent joins any pool's shared subscription", { via: '$share/cpu/tasks/+/pool/+' }),
  cannot('agent-a', 'receive', 'tasks/t3/request', 'a request carrying phi published under tasks/ reaches every agent before intake rejects it', { via: 'tasks/+/request' }),

  // ---- accredited agent ----------------------------------------------------------------------
  can('agent-g', 'receive', 'patient-data/t9/request', 'a gdpr-accredited agent reads patient-data requests', { via: 'patient-data/+/request' }),
  can('agent-g', 'receive', 'patient-data/t9/assign/agent-g', 'a gdpr-accredited agent reads its patient-data assignment'),
  can('agent-g', 'publish-retained', 'patient-data/t9/output/s1', 'the accredited assignee writes its output'),
  cannot('agent-g', 'receive', 'patient-data/t9/result', 'an agent reads patient-data results'),
  cannot('agent-g', 'publish', 'patient-data/t9/request', 'an agent submits patient-data requests'),

  // ---- client: rights ------------------------------------------------------------------------
  can('client-1', 'connect', 'client-1', 'a client connects with its own identity as client id'),
  can('client-1', 'publish', 'tasks/t1/request', 'a client submits a task'),
  can('client-1', 'publish', 'tasks/t1/cancel', 'a client cancels its task'),
  can('client-1', 'publish', 'tasks/t3/request', 'the broker cannot see data classes: a phi request under tasks/ is accepted'),
  can('client-1', 'receive', 'tasks/t1/status', 'a client watches its task status'),
  can('client-1', 'receive', 'tasks/t1/result', "a client reads its task's result"),
  can('client-1', 'receive', 'tasks/t1/output/s1', "a client reads its task's step outputs", { via: 'tasks/t1/output/+' }),
  can('client-1', 'receive', 'tasks/t1/progress/s1', "a client reads its task's progress", { via: 'tasks/t1/progress/+' }),
  can('client-1', 'receive', 'agents/agent-a/resume', 'a client sees which agents exist', { via: 'agents/+/resume' }),
  can('client-1', 'receive', 'agents/agent-a/status', 'a client sees whether agents are online', { via: 'agents/+/status' }),

  // ---- client: attacks that fail -------------------------------------------------------------
  cannot('client-1', 'connect', 'client-2', "a client takes over another client's session"),
  cannot('client-1', 'publish-retained', 'tasks/t1/status', 'a client forges task status'),
  cannot('client-1', 'publish-retained', 'tasks/t1/result', 'a client forges a task result'),
  cannot('client-1', 'publish', 'tasks/t1/assign/agent-a', 'a client assigns steps'),
  cannot('client-1', 'publish', 'tasks/t1/pool/gpu', 'a client injects pool steps'),
  cannot('client-1', 'publish-retained', 'tasks/t1/output/s1', 'a client forges a step output'),
  cannot('client-1', 'publish', 'tasks/t1/progress/s1', 'a client forges progress'),
  cannot('client-1', 'publish', 'tasks/t1/proposal/client-1', 'a client poses as an agent through the agent patterns'),
  cannot('client-1', 'publish-retained', 'agents/client-1/resume', 'a client registers itself as an agent'),
  cannot('client-1', 'receive', 'tasks/t2/request', "a client reads other clients' requests", { via: 'tasks/+/request' }),
  cannot('client-1', 'receive', 'tasks/t1/assign/agent-a', 'a client reads assignments and fencing tokens', { via: 'tasks/+/assign/+' }),
  cannot('client-1', 'receive', 'tasks/t1/pool/gpu', 'a client reads pool steps', { via: 'tasks/+/pool/+' }),
  cannot('client-1', 'receive', 'tasks/t1/proposal/agent-a', 'a client reads bids', { via: 'tasks/+/proposal/+' }),
  cannot('client-1', 'receive', 'agents/agent-a/telemetry', 'a client reads agent telemetry', { via: 'agents/+/telemetry' }),
  cannot('client-1', 'receive', 'patient-data/t9/result', 'a client without the gdpr accreditation reads patient-data results'),

  // ---- client: attacks the current model does not block (see KNOWN_OPEN) ---------------------
  cannot('client-1', 'receive', 'tasks/t2/result', "a client reads another client's result"),
  cannot('client-1', 'receive', 'tasks/t2/status', "a client reads another client's task status"),
  cannot('client-1', 'receive', 'tasks/t2/output/s1', "a client reads another client's step outputs", { via: 'tasks/+/output/+' }),
  cannot('client-1', 'receive', 'tasks/t2/progress/s1', "a client reads another client's progress (and any non-assignee's forged progress)", { via: 'tasks/+/progress/+' }),

  // ---- accredited client ---------------------------------------------------------------------
  can('client-g', 'publish', 'patient-data/t9/request', 'a gdpr-accredited client submits a patient-data task'),
  can('client-g', 'receive', 'patient-data/t9/result', 'a gdpr-accredited client reads its patient-data result'),
  can('client-g', 'receive', 'patient-data/t9/status', 'a gdpr-accredited client watches its patient-data task'),
  can('client-g', 'receive', 'patient-data/t9/output/s1', 'a gdpr-accredited client reads its patient-data outputs', { via: 'patient-data/t9/output/+' }),
  cannot('client-g', 'receive', 'patient-data/t9/request', 'a client in the gdpr group reads patient-data requests', { via: 'patient-data/+/request' }),
  cannot('client-g', 'receive', 'patient-data/t9/pool/gpu', 'a client in the gdpr group reads patient-data pool steps', { via: 'patient-data/+/pool/+' }),
  cannot('client-g', 'publish-retained', 'patient-data/t9/output/s1', 'a client in the gdpr group publishes patient-data outputs'),
  cannot('client-g', 'publish', 'patient-data/t9/proposal/client-g', 'a client in the gdpr group bids on patient-data tasks'),

  // ---- orchestrator --------------------------------------------------------------------------
  can('porchlight-orchestrator', 'connect', 'porchlight-orchestrator', 'the orchestrator connects with its own identity'),
  can('porchlight-orchestrator', 'publish', 'tasks/t1/assign/agent-a', 'the orchestrator assigns steps'),
  can('porchlight-orchestrator', 'publish', 'tasks/t1/pool/gpu', 'the orchestrator offers pool steps'),
  can('porchlight-orchestrator', 'publish-retained', 'tasks/t1/status', 'the orchestrator publishes task status'),
  can('porchlight-orchestrator', 'publish-retained', 'tasks/t1/result', 'the orchestrator publishes results'),
  can('porchlight-orchestrator', 'publish-retained', 'patient-data/t9/status', 'the orchestrator publishes patient-data task status'),
  can('porchlight-orchestrator', 'publish', 'agents/agent-a/errors', 'the orchestrator tells an agent why its message was rejected'),
  can('porchlight-orchestrator', 'publish-retained', 'tasks/t1/result', 'retention clears the retained result', { empty: true }),
  can('porchlight-orchestrator', 'publish-retained', 'tasks/t1/output/s1', 'retention clears the retained outputs', { empty: true }),
  can('porchlight-orchestrator', 'receive', 'tasks/t1/request', 'the orchestrator takes in requests', { via: 'tasks/+/request' }),
  can('porchlight-orchestrator', 'receive', 'tasks/t1/proposal/agent-a', 'the orchestrator collects bids', { via: 'tasks/+/proposal/+' }),
  can('porchlight-orchestrator', 'receive', 'tasks/t1/output/s1', 'the orchestrator accepts outputs', { via: 'tasks/+/output/+' }),
  can('porchlight-orchestrator', 'receive', 'tasks/t1/progress/s1', 'the orchestrator sees progress', { via: 'tasks/+/progress/+' }),
  can('porchlight-orchestrator', 'receive', 'tasks/t1/cancel', 'the orchestrator takes cancels', { via: 'tasks/+/cancel' }),
  can('porchlight-orchestrator', 'receive', 'patient-data/t9/request', 'the orchestrator takes in patient-data requests', { via: 'patient-data/+/request' }),
  can('porchlight-orchestrator', 'receive', 'agents/agent-a/telemetry', 'the orchestrator keeps the registry', { via: 'agents/+/telemetry' }),
  cannot('porchlight-orchestrator', 'publish', 'tasks/t1/request', 'the orchestrator forges requests'),
  cannot('porchlight-orchestrator', 'publish-retained', 'agents/agent-a/resume', "the orchestrator forges an agent's résumé"),

  // ---- observers -----------------------------------------------------------------------------
  can('observer-1', 'connect', 'observer-1', 'an observer connects with its own identity'),
  can('observer-1', 'receive', 'agents/agent-a/status', 'an observer sees the agent tree', { via: 'agents/#' }),
  can('observer-1', 'receive', 'tasks/t1/status', 'an observer sees task status'),
  can('observer-1', 'receive', 'tasks/t1/result', 'an observer sees results'),
  cannot('observer-1', 'connect', 'agent-a', "an observer takes over an agent's session"),
  cannot('observer-1', 'publish', 'tasks/t1/request', 'an observer submits tasks'),
  cannot('observer-1', 'publish-retained', 'tasks/t1/status', 'an observer forges task status'),
  cannot('observer-1', 'receive', 'tasks/t1/request', 'an observer reads requests', { via: 'tasks/+/request' }),
  cannot('observer-1', 'receive', 'tasks/t1/assign/agent-a', 'an observer reads assignments and fencing tokens', { via: 'tasks/+/assign/+' }),
  can('observer', 'connect', 'observer', 'the web view connects with its own identity'),
  can('observer', 'receive', 'tasks/t1/status', 'the web view shows task status'),
  cannot('observer', 'publish', 'tasks/t1/request', 'the read-only web view submits tasks'),
  cannot('observer', 'connect', 'porchlight-orchestrator', "the read-only web view takes over the orchestrator's session"),
  cannot('observer', 'connect', 'agent-a', "the read-only web view takes over an agent's session"),
];

/** The orchestrator functions, as named in infra/stacks/service-stack.ts. */
export type FunctionName = 'intake' | 'planner' | 'progress' | 'registry' | 'presence' | 'timer' | 'sweeper';

/** A data-plane publish by a function's IAM role (AWS only; locally the functions publish as porchlight-orchestrator). */
export interface FunctionProbeRow {
  readonly fn: FunctionName;
  readonly action: 'publish' | 'publish-retained';
  readonly topic: string;
  readonly empty?: boolean;
  readonly expect: 'allow' | 'deny';
  readonly why: string;
}

function fnCan(fn: FunctionName, action: FunctionProbeRow['action'], topic: string, why: string, options: { empty?: boolean } = {}): FunctionProbeRow {
  return { fn, action, topic, ...options, expect: 'allow', why };
}

function fnCannot(fn: FunctionName, action: FunctionProbeRow['action'], topic: string, why: string): FunctionProbeRow {
  return { fn, action, topic, expect: 'deny', why };
}

/** A function row's key, used by {@link KNOWN_OPEN}. */
export function functionRowKey(row: Pick<FunctionProbeRow, 'fn' | 'action' | 'topic' | 'empty'>): string {
  return `fn:${row.fn} ${row.action}${row.empty ? ' (empty)' : ''} ${row.topic}`;
}

/** What each function's role may publish through the IoT data plane. */
export const FUNCTION_ROWS: readonly FunctionProbeRow[] = [
  fnCan('intake', 'publish-retained', 'tasks/t1/status', 'intake acknowledges or rejects a request with a status'),
  fnCan('intake', 'publish-retained', 'patient-data/t9/status', 'intake answers patient-data requests'),
  fnCannot('intake', 'publish', 'tasks/t1/assign/agent-a', 'intake never assigns steps (least privilege)'),
  fnCannot('intake', 'publish-retained', 'tasks/t1/result', 'intake never publishes results'),
  fnCan('planner', 'publish', 'tasks/t1/assign/agent-a', 'the planner assigns steps'),
  fnCan('planner', 'publish', 'tasks/t1/pool/gpu', 'the planner offers pool steps'),
  fnCan('planner', 'publish-retained', 'tasks/t1/result', 'the planner finishes tasks'),
  fnCan('planner', 'publish', 'agents/agent-a/errors', 'the planner tells agents why a message was rejected'),
  fnCannot('planner', 'publish', 'tasks/t1/request', 'no function forges requests'),
  fnCannot('planner', 'publish-retained', 'agents/agent-a/resume', "no function forges an agent's résumé"),
  fnCannot('presence', 'publish', 'agents/agent-a/errors', 'presence sends no rejection notices'),
  fnCan('timer', 'publish-retained', 'tasks/t1/result', 'retention clears the retained result', { empty: true }),
  fnCan('timer', 'publish-retained', 'tasks/t1/output/s1', 'retention (timer) clears the retained outputs', { empty: true }),
  fnCan('sweeper', 'publish-retained', 'tasks/t1/output/s1', 'retention (sweeper) clears the retained outputs', { empty: true }),
];

/**
 * A row whose verdict on a broker differs from the expected one today: an attack that is not
 * blocked (expected deny, gets allow) or a right that is missing (expected allow, gets deny).
 * Each runner asserts the row still gets the opposite verdict on the listed brokers.
 */
export interface KnownOpen {
  /** Short name, for messages and the issue tracker. */
  readonly name: string;
  readonly on: readonly Broker[];
  /** Row keys ({@link rowKey}, {@link functionRowKey}), or a predicate over matrix rows. */
  readonly rows: readonly string[] | ((row: ProbeRow) => boolean);
  readonly why: string;
}

/** Today's open attacks and missing rights. Remove an entry (or a key) once it is fixed. */
export const KNOWN_OPEN: readonly KnownOpen[] = [
  {
    name: 'agents overwrite and erase any output',
    on: ['mosquitto', 'iot'],
    rows: ['agent-a publish-retained tasks/t2/output/s1', 'agent-a publish-retained (empty) tasks/t2/output/s1'],
    why: 'every agent may write `<root>/+/output/+`; only the fencing token, checked by the orchestrator, tells the assignee apart, and the retained copy clients read is not checked',
  },
  {
    name: 'non-assignee progress reaches clients',
    on: ['mosquitto', 'iot'],
    rows: ['agent-a publish tasks/t2/progress/s1', 'client-1 receive tasks/t2/progress/s1 via tasks/+/progress/+'],
    why: 'every agent may write `<root>/+/progress/+` and clients read progress straight from agents',
  },
  {
    name: "agents read every pool's steps",
    on: ['mosquitto', 'iot'],
    rows: ['agent-a receive tasks/t2/pool/cpu via tasks/+/pool/+', 'agent-a receive tasks/t2/pool/cpu via $share/cpu/tasks/+/pool/+'],
    why: 'the model has no pool membership: every agent may read `<root>/+/pool/+`',
  },
  {
    name: 'misfiled phi requests reach every agent',
    on: ['mosquitto', 'iot'],
    rows: ['agent-a receive tasks/t3/request via tasks/+/request'],
    why: 'requests go straight to agents; intake rejects a phi request under tasks/ only after the broker has delivered it',
  },
  {
    name: "clients read other clients' tasks",
    on: ['mosquitto', 'iot'],
    rows: ['client-1 receive tasks/t2/result', 'client-1 receive tasks/t2/status', 'client-1 receive tasks/t2/output/s1 via tasks/+/output/+'],
    why: 'task topics carry no owner: every client may read `<root>/+/status`, `result`, `output/+` and `progress/+`',
  },
  {
    name: 'the gdpr group grants agent rights to whoever is in it',
    on: ['iot'],
    rows: [
      'client-g publish patient-data/t9/request',
      'client-g receive patient-data/t9/result',
      'client-g receive patient-data/t9/output/s1 via patient-data/t9/output/+',
      'client-g receive patient-data/t9/request via patient-data/+/request',
      'client-g receive patient-data/t9/pool/gpu via patient-data/+/pool/+',
      'client-g publish-retained patient-data/t9/output/s1',
      'client-g publish patient-data/t9/proposal/client-g',
    ],
    why: 'the accredit-gdpr thing-group policy is rendered for the agent role only; IoT policies cannot tell a client from an agent in the group, so no client can submit or read a patient-data task and a client put in the group gets agent rights',
  },
  {
    name: 'retention cannot clear outputs',
    on: ['mosquitto', 'iot'],
    rows: ['porchlight-orchestrator publish-retained (empty) tasks/t1/output/s1', 'fn:timer publish-retained (empty) tasks/t1/output/s1', 'fn:sweeper publish-retained (empty) tasks/t1/output/s1'],
    why: 'clearRetained publishes empty retained outputs, but neither the orchestrator role nor any function role may publish `…/output/…`',
  },
  {
    name: 'collision guards live only in the second agent policy part',
    on: ['iot'],
    rows: ['agent-part1 receive tasks/t1/assign/status', 'agent-part1 receive tasks/t1/assign/request'],
    why: 'splitIotPolicy puts the Deny statements after the Allows; a certificate with only `porchlight-agent` attached keeps every grant and loses the guards',
  },
  {
    name: 'the web view takes over any session',
    on: ['mosquitto'],
    rows: ['observer connect porchlight-orchestrator', 'observer connect agent-a'],
    why: 'the WebSocket listener has no use_username_as_clientid, so the observer login may send any client id and Mosquitto disconnects the session holding it',
  },
  {
    name: 'Mosquitto grants every SUBSCRIBE',
    on: ['mosquitto'],
    rows: (row) => row.action === 'subscribe' && row.expect === 'deny',
    why: 'Mosquitto 2.0 acl_file checks read access per delivered message, not at SUBSCRIBE; the matching receive rows show nothing is delivered',
  },
];

/**
 * IoT policy properties the issue asks for that the synthesized policies lack; the IoT runner
 * checks each is still missing.
 */
export const KNOWN_OPEN_IOT_POLICY_GAPS = [
  {
    name: 'no iot:Connection.Thing.IsAttached condition',
    why: 'no Allow in a thing-held policy requires `Bool iot:Connection.Thing.IsAttached: true`; today only the ThingName variable failing to resolve keeps a certificate without its thing out',
  },
] as const;
