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
 * Functions' data-plane publishes go to {@link FUNCTION_ROWS}: on AWS decided by their IAM roles,
 * locally by the data-plane shim with each function's own credentials. An attack the current
 * model does not block gets a `cannot` row plus an entry in {@link KNOWN_OPEN}.
 *
 * Names used by the rows (docs/PROTOCOL.md, "Two trees per task"): task `t1` belongs to
 * client-1 (its tree is `clients/client-1/tasks/t1/…`), its step `s1` is assigned to agent-a and
 * its step `s2` is offered to pool `gpu`; task `t2` belongs to client-2, its steps `s1` and `pool`
 * are assigned to agent-b; `t3` is a request of client-1 carrying data class `phi` that was
 * misfiled under `tasks/`; `patient-data/t9` belongs to client-g, its step `s1` is assigned to
 * agent-g and offered to pool `gpu`.
 *
 * Pools are membership (docs/PROTOCOL.md, "Pools are membership"): the deployment has the pools
 * {@link PROBE_POOLS}; agent-a is a member of `gpu`, and so is agent-g (gdpr), which therefore also
 * reads the pool's patient-data offers; agent-b is in no pool and nobody is in `cpu`. Locally the
 * CA issues the identities with their pools; on AWS their things are in `pool-<name>` and, for
 * each accreditation they hold, `accredit-<label>-pool-<name>`.
 */
import type { Role } from '../../core/policy';
import { FUNCTION_NAMES, type FunctionName } from '../../infra/rules/catalogue';

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
   * Pools the identity is a member of (agents only): the local CA's registry locally; on AWS the
   * thing groups `pool-<name>` and `accredit-<label>-pool-<name>` for each of its accreditations.
   * Every pool named must be one of {@link PROBE_POOLS}. @default []
   */
  readonly pools?: readonly string[];
  /**
   * `websocket`: the read-only browser view, which logs in with a password on Mosquitto's
   * WebSocket listener (no certificate; its id must be the listener's login, `ws-observer`, which
   * is also its client id). On AWS it is evaluated as an observer thing.
   * @default 'tls'
   */
  readonly transport?: 'tls' | 'websocket';
  /**
   * Which parts of the role's IoT policy are attached to the certificate on AWS (all must be;
   * `first` models a registration that attached only the first, which must narrow rights and
   * never widen them). No effect on Mosquitto.
   * @default 'all'
   */
  readonly iotPolicyParts?: 'all' | 'first';
}

/** The pools the synthesized deployment defines (its `pools` context). */
export const PROBE_POOLS: readonly string[] = ['gpu', 'cpu'];

/** The identities of the matrix, by id. */
export const IDENTITIES: Readonly<Record<string, ProbeIdentity>> = Object.fromEntries(
  ([
    { id: 'agent-a', role: 'agent', accreditations: [], pools: ['gpu'] },
    { id: 'agent-b', role: 'agent', accreditations: [] },
    { id: 'agent-g', role: 'agent', accreditations: ['gdpr'], pools: ['gpu'] },
    { id: 'agent-part1', role: 'agent', accreditations: [], iotPolicyParts: 'first' },
    { id: 'client-1', role: 'client', accreditations: [] },
    { id: 'client-2', role: 'client', accreditations: [] },
    { id: 'client-g', role: 'client', accreditations: ['gdpr'] },
    { id: 'porchlight-orchestrator', role: 'orchestrator', accreditations: [] },
    { id: 'observer-1', role: 'observer', accreditations: [] },
    { id: 'ws-observer', role: 'observer', accreditations: [], transport: 'websocket' },
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
  can('agent-a', 'publish', 'tasks/t1/output/s1/agent-a', 'the assignee hands in its output, to the orchestrator alone'),
  can('agent-a', 'publish', 'tasks/t1/progress/s1/agent-a', 'the assignee hands in progress, to the orchestrator alone'),
  can('agent-a', 'subscribe', 'tasks/+/request', 'an agent watches for calls for bids'),
  can('agent-a', 'subscribe', 'tasks/+/assign/agent-a', 'an agent subscribes to its own assignments'),
  can('agent-a', 'subscribe', '$share/gpu/tasks/+/pool/gpu', "a pool member shares its pool's steps"),
  can('agent-a', 'receive', 'tasks/t1/request', 'an agent reads calls for bids', { via: 'tasks/+/request' }),
  can('agent-a', 'receive', 'tasks/t1/assign/agent-a', 'an agent reads its own assignment (with the fencing token)', { via: 'tasks/+/assign/agent-a' }),
  can('agent-a', 'receive', 'tasks/t1/pool/gpu', "a pool member takes its pool's steps", { via: '$share/gpu/tasks/+/pool/gpu' }),
  can('agent-a', 'receive', 'tasks/t1/status', "an agent watches the agents' task status for cancellation"),
  can('agent-a', 'receive', 'agents/agent-a/errors', 'an agent reads why its own messages were rejected'),
  can('agent-part1', 'publish', 'tasks/t1/proposal/agent-part1', 'the first part of the agent policy holds the grant on bids'),

  // ---- agent: sessions, names and the orchestrator's topics -----------------------------------
  cannot('agent-a', 'connect', 'agent-b', "an agent takes over another agent's session"),
  cannot('agent-a', 'connect', 'porchlight-orchestrator', "an agent takes over the orchestrator's session"),
  cannot('agent-a', 'connect', 'client-1', "an agent takes over a client's session"),
  cannot('agent-a', 'publish', 'tasks/t1/proposal/agent-b', "an agent bids under another agent's name"),
  cannot('agent-a', 'publish-retained', 'agents/agent-b/resume', "an agent forges another agent's résumé"),
  cannot('agent-a', 'publish-retained', 'agents/agent-b/status', 'an agent reports another agent offline to have its steps re-assigned'),
  cannot('agent-a', 'publish', 'agents/agent-b/errors', 'an agent forges rejection notices to another agent'),
  cannot('agent-a', 'publish', 'tasks/t1/request', 'an agent forges a call for bids'),
  cannot('agent-a', 'publish', 'tasks/t1/assign/agent-a', 'an agent assigns a step to itself'),
  cannot('agent-a', 'publish', 'tasks/t1/pool/gpu', 'an agent injects a pool step'),
  cannot('agent-a', 'publish-retained', 'tasks/t1/status', "an agent forges the agents' task status (a fake cancellation)"),
  cannot('agent-a', 'publish', 'clients/client-1/tasks/t1/request', 'an agent submits a task as a client'),
  cannot('agent-a', 'publish', 'clients/client-1/tasks/t1/cancel', "an agent cancels a client's task"),

  // ---- agent: forged outputs and progress ------------------------------------------------------
  cannot('agent-a', 'publish', 'clients/client-2/tasks/t2/output/s1', "an agent writes a step output straight onto the owner's tree"),
  cannot('agent-a', 'publish-retained', 'clients/client-2/tasks/t2/output/s1', "an agent overwrites the retained output the owner reads"),
  cannot('agent-a', 'publish-retained', 'clients/client-2/tasks/t2/output/s1', "an agent erases the retained output the owner reads", { empty: true }),
  cannot('agent-a', 'publish', 'tasks/t2/output/s1/agent-b', "an agent hands in an output under the assignee's name"),
  cannot('agent-a', 'publish-retained', 'tasks/t2/output/s1/agent-b', "an agent retains a message on another agent's hand-in topic"),
  cannot('agent-a', 'publish-retained', 'tasks/t2/output/s1/agent-b', "an agent erases a retained message on another agent's hand-in topic", { empty: true }),
  cannot('agent-a', 'publish', 'clients/client-2/tasks/t2/progress/s1', "an agent writes progress straight onto the owner's tree"),
  cannot('agent-a', 'publish', 'tasks/t2/progress/s1/agent-b', "an agent hands in progress under the assignee's name"),
  cannot('agent-a', 'publish-retained', 'clients/client-1/tasks/t1/status', "an agent forges the owner's task status"),
  cannot('agent-a', 'publish-retained', 'clients/client-1/tasks/t1/result', 'an agent forges a task result'),
  cannot('agent-a', 'publish-retained', 'tasks/t1/output/s1/agent-a', 'an agent retains its own hand-in (hand-ins are never retained)'),

  // ---- agent: reading what is not its own --------------------------------------------------------
  cannot('agent-a', 'subscribe', 'tasks/+/assign/+', "an agent subscribes to every agent's assignments"),
  cannot('agent-a', 'receive', 'tasks/t2/assign/agent-b', "an agent reads another agent's assignment and fencing token", { via: 'tasks/+/assign/+' }),
  cannot('agent-a', 'receive', 'tasks/t2/assign/agent-b', "an agent reads another agent's assignment by its exact topic"),
  cannot('agent-a', 'receive', 'tasks/t1/assign/status', 'an agent reads the assignment of an agent whose id is a topic word (`*` spans levels on IoT)'),
  cannot('agent-part1', 'publish', 'tasks/t1/claim/proposal/agent-part1', 'with only the first policy part attached, the bid grant `tasks/*/proposal/<self>` reaches the claim of a step named `proposal`'),
  cannot('agent-part1', 'publish', 'tasks/t1/output/s1/proposal', 'with only the first policy part attached, a hand-in grant reaches the hand-in of an agent named `proposal`'),
  cannot('agent-a', 'receive', 'tasks/t2/proposal/agent-b', "an agent reads its rivals' bids", { via: 'tasks/+/proposal/+' }),
  cannot('agent-a', 'receive', 'tasks/t2/output/s1/agent-b', "an agent reads another agent's handed-in output (and fencing token)", { via: 'tasks/+/output/+/+' }),
  cannot('agent-a', 'receive', 'tasks/t2/progress/s1/agent-b', "an agent reads another agent's handed-in progress", { via: 'tasks/+/progress/+/+' }),
  cannot('agent-a', 'receive', 'tasks/t2/output/pool/agent-b', "an agent reads another agent's hand-in of a step whose id is `pool` by its exact topic"),
  cannot('agent-a', 'receive', 'clients/client-1/tasks/t1/request', "an agent reads clients' own requests (cancel hash, client id)", { via: 'clients/+/tasks/+/request' }),
  cannot('agent-a', 'receive', 'clients/client-1/tasks/t1/cancel', 'an agent reads cancel secrets', { via: 'clients/+/tasks/+/cancel' }),
  cannot('agent-a', 'receive', 'clients/client-1/tasks/t1/result', 'an agent reads task results'),
  cannot('agent-a', 'receive', 'clients/client-1/tasks/t1/status', "an agent reads the owner's task status"),
  cannot('agent-a', 'receive', 'clients/client-1/tasks/t1/output/s1', "an agent reads the outputs republished for the owner", { via: 'clients/+/tasks/+/output/+' }),
  cannot('agent-a', 'receive', 'clients/client-1/tasks/t3/request', 'a phi request a client misfiled under tasks/ reaches an agent', { via: 'clients/+/tasks/+/request' }),
  cannot('agent-a', 'receive', 'agents/agent-b/errors', "an agent reads another agent's rejection notices"),
  cannot('agent-a', 'receive', 'agents/agent-b/telemetry', "an agent reads another agent's telemetry", { via: 'agents/+/telemetry' }),
  cannot('agent-a', 'receive', 'patient-data/t9/request', 'an agent without the gdpr accreditation reads patient-data calls for bids', { via: 'patient-data/+/request' }),
  cannot('agent-a', 'receive', 'patient-data/t9/pool/gpu', 'an agent without the gdpr accreditation reads patient-data pool steps', { via: 'patient-data/+/pool/+' }),
  cannot('agent-a', 'publish', 'patient-data/t9/proposal/agent-a', 'an agent without the gdpr accreditation bids on patient-data tasks'),
  cannot('agent-a', 'receive', 'tasks/t2/pool/cpu', "an agent reads the steps of a pool it is not a member of (inputs and fencing token)", { via: 'tasks/+/pool/+' }),
  cannot('agent-a', 'receive', 'tasks/t2/pool/cpu', "an agent joins the shared subscription of a pool it is not a member of", { via: '$share/cpu/tasks/+/pool/+' }),

  // ---- pools are membership ------------------------------------------------------------------
  can('agent-a', 'subscribe', 'tasks/+/pool/gpu', "a pool member subscribes to its pool's offers"),
  can('agent-a', 'receive', 'tasks/t1/pool/gpu', "a pool member reads its pool's offers", { via: 'tasks/+/pool/gpu' }),
  can('agent-a', 'publish', 'tasks/t1/claim/s2/agent-a', 'a pool member claims an offered step under its own name, to the orchestrator alone'),
  cannot('agent-a', 'publish', 'tasks/t1/claim/s2/agent-b', "a pool member claims under another agent's name"),
  cannot('agent-a', 'receive', 'tasks/t1/claim/s2/agent-b', "an agent reads other agents' claims", { via: 'tasks/+/claim/+/+' }),
  cannot('agent-a', 'receive', 'patient-data/t9/pool/gpu', "a pool member without the gdpr accreditation reads its pool's patient-data offers", { via: 'patient-data/+/pool/gpu' }),
  cannot('agent-a', 'receive', 'patient-data/t9/pool/gpu', "a pool member without the gdpr accreditation joins its pool's patient-data shared subscription", { via: '$share/gpu/patient-data/+/pool/gpu' }),
  cannot('agent-a', 'publish', 'patient-data/t9/claim/s1/agent-a', 'a pool member without the gdpr accreditation claims a patient-data step'),
  cannot('agent-a', 'receive', 'tasks/t2/output/pool/gpu', 'a pool member reads the hand-in of a step named `pool` by an agent named like the pool (`*` spans levels on IoT)'),
  cannot('agent-a', 'subscribe', '$share/gpu/tasks/+/output/pool/gpu', 'a pool member subscribes to hand-ins through its shared-subscription grant (`*` spans levels on IoT)'),
  cannot('agent-b', 'subscribe', 'tasks/+/pool/gpu', 'an agent in no pool subscribes to a pool'),
  cannot('agent-b', 'receive', 'tasks/t1/pool/gpu', "an agent in no pool reads a pool's offers", { via: 'tasks/+/pool/gpu' }),
  cannot('agent-b', 'receive', 'tasks/t1/pool/gpu', "an agent in no pool joins a pool's shared subscription", { via: '$share/gpu/tasks/+/pool/gpu' }),
  cannot('agent-b', 'publish', 'tasks/t1/claim/s2/agent-b', 'an agent in no pool claims a pool step'),
  cannot('agent-b', 'publish', 'tasks/t1/claim/proposal/agent-b', 'an agent in no pool claims a step named `proposal` through its bid grant (`*` spans levels on IoT)'),
  can('agent-g', 'receive', 'tasks/t1/pool/gpu', "an accredited pool member reads its pool's offers under tasks/", { via: 'tasks/+/pool/gpu' }),
  can('agent-g', 'receive', 'patient-data/t9/pool/gpu', "a gdpr-accredited pool member shares its pool's patient-data offers", { via: '$share/gpu/patient-data/+/pool/gpu' }),
  can('agent-g', 'publish', 'patient-data/t9/claim/s1/agent-g', 'a gdpr-accredited pool member claims a patient-data step under its own name'),
  cannot('agent-g', 'publish', 'patient-data/t9/claim/s1/agent-a', "an accredited pool member claims under another agent's name"),
  cannot('agent-g', 'receive', 'patient-data/t9/pool/cpu', 'an accredited agent reads the patient-data offers of a pool it is not a member of', { via: 'patient-data/+/pool/cpu' }),

  // ---- accredited agent ----------------------------------------------------------------------
  can('agent-g', 'receive', 'patient-data/t9/request', 'a gdpr-accredited agent reads patient-data calls for bids', { via: 'patient-data/+/request' }),
  can('agent-g', 'receive', 'patient-data/t9/assign/agent-g', 'a gdpr-accredited agent reads its patient-data assignment'),
  can('agent-g', 'receive', 'patient-data/t9/status', 'a gdpr-accredited agent watches patient-data task status'),
  can('agent-g', 'publish', 'patient-data/t9/proposal/agent-g', 'a gdpr-accredited agent bids on patient-data tasks'),
  can('agent-g', 'publish', 'patient-data/t9/output/s1/agent-g', 'the accredited assignee hands in its output'),
  can('agent-g', 'publish', 'tasks/t1/proposal/agent-g', 'an accredited agent keeps its rights on tasks/'),
  cannot('agent-g', 'publish', 'clients/agent-g/patient-data/t8/request', 'a gdpr-accredited agent gets client rights on patient-data (submits under its own id)'),
  cannot('agent-g', 'receive', 'clients/agent-g/patient-data/t8/result', 'a gdpr-accredited agent gets client rights on patient-data (reads a tree under its own id)'),
  cannot('agent-g', 'receive', 'clients/client-g/patient-data/t9/result', 'an agent reads patient-data results'),
  cannot('agent-g', 'receive', 'clients/client-g/patient-data/t9/request', 'an agent reads patient-data requests before intake validated them', { via: 'clients/+/patient-data/+/request' }),
  cannot('agent-g', 'publish', 'patient-data/t9/request', 'an agent forges a patient-data call for bids'),
  cannot('agent-g', 'publish-retained', 'clients/client-g/patient-data/t9/output/s1', "an accredited agent writes a patient-data output onto the owner's tree"),

  // ---- client: rights ------------------------------------------------------------------------
  can('client-1', 'connect', 'client-1', 'a client connects with its own identity as client id'),
  can('client-1', 'publish', 'clients/client-1/tasks/t1/request', 'a client submits a task on its own tree'),
  can('client-1', 'publish', 'clients/client-1/tasks/t1/cancel', 'a client cancels its task'),
  can('client-1', 'publish', 'clients/client-1/tasks/t3/request', 'the broker cannot see data classes: a phi request misfiled under tasks/ is accepted, reaches the orchestrator alone and is rejected there'),
  can('client-1', 'subscribe', 'clients/client-1/tasks/+/result', "a client subscribes to all its tasks' results"),
  can('client-1', 'receive', 'clients/client-1/tasks/t1/status', 'a client watches its task status'),
  can('client-1', 'receive', 'clients/client-1/tasks/t1/result', "a client reads its task's result"),
  can('client-1', 'receive', 'clients/client-1/tasks/t1/result', "a client reads its tasks' results through one wildcard", { via: 'clients/client-1/tasks/+/result' }),
  can('client-1', 'receive', 'clients/client-1/tasks/t1/output/s1', "a client reads its task's accepted outputs", { via: 'clients/client-1/tasks/t1/output/+' }),
  can('client-1', 'receive', 'clients/client-1/tasks/t1/progress/s1', "a client reads the live assignee's progress", { via: 'clients/client-1/tasks/t1/progress/+' }),
  can('client-1', 'receive', 'clients/client-1/errors', 'a client reads why its own messages were refused'),
  can('client-1', 'receive', 'agents/agent-a/resume', 'a client sees which agents exist', { via: 'agents/+/resume' }),
  can('client-1', 'receive', 'agents/agent-a/status', 'a client sees whether agents are online', { via: 'agents/+/status' }),

  // ---- client: attacks -----------------------------------------------------------------------
  cannot('client-1', 'connect', 'client-2', "a client takes over another client's session"),
  cannot('client-1', 'connect', 'agent-a', "a client takes over an agent's session"),
  cannot('client-1', 'publish', 'clients/client-2/tasks/t2/request', 'a client submits a task under another client'),
  cannot('client-1', 'publish', 'clients/client-2/tasks/t2/cancel', "a client cancels another client's task"),
  cannot('client-1', 'publish-retained', 'clients/client-1/tasks/t1/status', 'a client forges its own task status'),
  cannot('client-1', 'publish-retained', 'clients/client-1/tasks/t1/result', 'a client forges its own task result'),
  cannot('client-1', 'publish-retained', 'clients/client-1/tasks/t1/output/s1', 'a client forges an accepted output'),
  cannot('client-1', 'publish', 'clients/client-1/tasks/t1/progress/s1', 'a client forges progress'),
  cannot('client-1', 'publish-retained', 'clients/client-2/tasks/t2/result', "a client forges another client's result"),
  cannot('client-1', 'publish', 'clients/client-2/errors', 'a client forges refusal notices to another client'),
  cannot('client-1', 'publish', 'tasks/t1/request', 'a client publishes a call for bids straight to agents, skipping intake'),
  cannot('client-1', 'publish', 'tasks/t3/request', 'a client publishes a phi request on the agent tree, where unaccredited agents read'),
  cannot('client-1', 'publish', 'clients/client-1/patient-data/t8/request', 'a client without the gdpr accreditation submits a patient-data task'),
  cannot('client-1', 'publish-retained', 'tasks/t1/status', "a client forges the agents' task status (a fake cancellation)"),
  cannot('client-1', 'publish', 'tasks/t1/assign/agent-a', 'a client assigns steps'),
  cannot('client-1', 'publish', 'tasks/t1/pool/gpu', 'a client injects pool steps'),
  cannot('client-1', 'publish', 'tasks/t1/output/s1/agent-a', "a client hands in an output under an agent's name"),
  cannot('client-1', 'publish', 'tasks/t1/output/s1/client-1', 'a client hands in an output through the agent patterns'),
  cannot('client-1', 'publish', 'tasks/t1/proposal/client-1', 'a client poses as an agent through the agent patterns'),
  cannot('client-1', 'publish-retained', 'agents/client-1/resume', 'a client registers itself as an agent'),
  cannot('client-1', 'receive', 'tasks/t1/assign/client-1', 'a client reads assignments through the agent patterns'),

  // ---- client: reading another client's tree or the agent tree --------------------------------
  cannot('client-1', 'receive', 'clients/client-2/tasks/t2/result', "a client reads another client's result"),
  cannot('client-1', 'receive', 'clients/client-2/tasks/t2/result', "a client reads every client's results through a wildcard", { via: 'clients/+/tasks/+/result' }),
  cannot('client-1', 'receive', 'clients/client-2/tasks/t2/status', "a client reads another client's task status"),
  cannot('client-1', 'receive', 'clients/client-2/tasks/t2/output/s1', "a client reads another client's outputs", { via: 'clients/client-2/tasks/t2/output/+' }),
  cannot('client-1', 'receive', 'clients/client-2/tasks/t2/progress/s1', "a client reads another client's progress", { via: 'clients/client-2/tasks/t2/progress/+' }),
  cannot('client-1', 'receive', 'clients/client-2/tasks/t2/request', "a client reads another client's request", { via: 'clients/+/tasks/+/request' }),
  cannot('client-1', 'receive', 'clients/client-2/tasks/t2/cancel', "a client reads another client's cancel secret", { via: 'clients/+/tasks/+/cancel' }),
  cannot('client-1', 'receive', 'clients/client-2/errors', "a client reads another client's refusal notices"),
  cannot('client-1', 'subscribe', 'clients/+/tasks/+/result', "a client subscribes to every client's results"),
  cannot('client-1', 'receive', 'tasks/t1/request', 'a client reads calls for bids', { via: 'tasks/+/request' }),
  cannot('client-1', 'receive', 'tasks/t1/status', "a client reads the agents' task status"),
  cannot('client-1', 'receive', 'tasks/t1/assign/agent-a', 'a client reads assignments and fencing tokens', { via: 'tasks/+/assign/+' }),
  cannot('client-1', 'receive', 'tasks/t1/pool/gpu', 'a client reads pool steps', { via: 'tasks/+/pool/+' }),
  cannot('client-1', 'receive', 'tasks/t1/pool/gpu', "a client joins a pool's shared subscription", { via: '$share/gpu/tasks/+/pool/gpu' }),
  cannot('client-1', 'publish', 'tasks/t1/claim/s2/client-1', 'a client claims a pool step through the agent patterns'),
  cannot('client-1', 'receive', 'tasks/t1/proposal/agent-a', 'a client reads bids', { via: 'tasks/+/proposal/+' }),
  cannot('client-1', 'receive', 'tasks/t1/output/s1/agent-a', 'a client reads outputs as handed in, fencing token included', { via: 'tasks/+/output/+/+' }),
  cannot('client-1', 'receive', 'agents/agent-a/telemetry', 'a client reads agent telemetry', { via: 'agents/+/telemetry' }),

  // ---- accredited client ---------------------------------------------------------------------
  can('client-g', 'publish', 'clients/client-g/patient-data/t9/request', 'a gdpr-accredited client submits a patient-data task'),
  can('client-g', 'publish', 'clients/client-g/patient-data/t9/cancel', 'a gdpr-accredited client cancels its patient-data task'),
  can('client-g', 'receive', 'clients/client-g/patient-data/t9/result', 'a gdpr-accredited client reads its patient-data result'),
  can('client-g', 'receive', 'clients/client-g/patient-data/t9/status', 'a gdpr-accredited client watches its patient-data task'),
  can('client-g', 'receive', 'clients/client-g/patient-data/t9/output/s1', 'a gdpr-accredited client reads its patient-data outputs', { via: 'clients/client-g/patient-data/t9/output/+' }),
  can('client-g', 'publish', 'clients/client-g/tasks/t5/request', 'an accredited client keeps its rights on tasks/'),
  cannot('client-g', 'receive', 'patient-data/t9/request', 'a client in the gdpr group gets agent rights: reads patient-data calls for bids', { via: 'patient-data/+/request' }),
  cannot('client-g', 'receive', 'patient-data/t9/pool/gpu', 'a client in the gdpr group gets agent rights: reads patient-data pool steps', { via: 'patient-data/+/pool/+' }),
  cannot('client-g', 'receive', 'patient-data/t9/assign/client-g', 'a client in the gdpr group gets agent rights: reads assignments under its own id'),
  cannot('client-g', 'receive', 'patient-data/t9/status', "a client in the gdpr group gets agent rights: reads the agents' patient-data status"),
  cannot('client-g', 'publish', 'patient-data/t9/output/s1/client-g', 'a client in the gdpr group gets agent rights: hands in a patient-data output'),
  cannot('client-g', 'publish', 'patient-data/t9/proposal/client-g', 'a client in the gdpr group gets agent rights: bids on patient-data tasks'),
  cannot('client-g', 'publish', 'patient-data/t9/request', 'a client in the gdpr group publishes a patient-data call for bids, skipping intake'),
  cannot('client-g', 'receive', 'clients/client-2/patient-data/t7/result', "an accredited client reads another client's patient-data result"),

  // ---- orchestrator --------------------------------------------------------------------------
  can('porchlight-orchestrator', 'connect', 'porchlight-orchestrator', 'the orchestrator connects with its own identity'),
  can('porchlight-orchestrator', 'publish', 'tasks/t1/request', 'the orchestrator calls for bids once intake validated a request'),
  can('porchlight-orchestrator', 'publish', 'patient-data/t9/request', 'the orchestrator calls for bids on patient-data tasks'),
  can('porchlight-orchestrator', 'publish', 'tasks/t1/assign/agent-a', 'the orchestrator assigns steps'),
  can('porchlight-orchestrator', 'publish', 'tasks/t1/pool/gpu', 'the orchestrator offers pool steps'),
  can('porchlight-orchestrator', 'publish-retained', 'tasks/t1/status', "the orchestrator publishes the agents' task status"),
  can('porchlight-orchestrator', 'publish-retained', 'clients/client-1/tasks/t1/status', "the orchestrator publishes the owner's task status"),
  can('porchlight-orchestrator', 'publish-retained', 'clients/client-1/tasks/t1/result', 'the orchestrator publishes results'),
  can('porchlight-orchestrator', 'publish-retained', 'clients/client-1/tasks/t1/output/s1', 'the orchestrator republishes an accepted output for the owner'),
  can('porchlight-orchestrator', 'publish', 'clients/client-1/tasks/t1/progress/s1', "the orchestrator relays the live assignee's progress"),
  can('porchlight-orchestrator', 'publish-retained', 'clients/client-g/patient-data/t9/status', 'the orchestrator publishes patient-data task status'),
  can('porchlight-orchestrator', 'publish', 'agents/agent-a/errors', 'the orchestrator tells an agent why its message was rejected'),
  can('porchlight-orchestrator', 'publish', 'clients/client-1/errors', 'the orchestrator tells a client why its message was refused'),
  can('porchlight-orchestrator', 'publish-retained', 'clients/client-1/tasks/t1/output/s1', 'retention clears the retained outputs', { empty: true }),
  can('porchlight-orchestrator', 'publish-retained', 'clients/client-1/tasks/t1/result', 'retention clears the retained result', { empty: true }),
  can('porchlight-orchestrator', 'publish-retained', 'tasks/t1/status', "retention clears the agents' task status", { empty: true }),
  can('porchlight-orchestrator', 'receive', 'clients/client-1/tasks/t1/request', 'the orchestrator takes in requests', { via: 'clients/+/tasks/+/request' }),
  can('porchlight-orchestrator', 'receive', 'clients/client-1/tasks/t1/cancel', 'the orchestrator takes cancels', { via: 'clients/+/tasks/+/cancel' }),
  can('porchlight-orchestrator', 'receive', 'clients/client-g/patient-data/t9/request', 'the orchestrator takes in patient-data requests', { via: 'clients/+/patient-data/+/request' }),
  can('porchlight-orchestrator', 'receive', 'tasks/t1/proposal/agent-a', 'the orchestrator collects bids', { via: 'tasks/+/proposal/+' }),
  can('porchlight-orchestrator', 'receive', 'tasks/t1/output/s1/agent-a', 'the orchestrator takes hand-in outputs', { via: 'tasks/+/output/+/+' }),
  can('porchlight-orchestrator', 'receive', 'tasks/t1/progress/s1/agent-a', 'the orchestrator takes hand-in progress', { via: 'tasks/+/progress/+/+' }),
  can('porchlight-orchestrator', 'receive', 'tasks/t1/claim/s2/agent-a', 'the orchestrator takes claims', { via: 'tasks/+/claim/+/+' }),
  can('porchlight-orchestrator', 'receive', 'patient-data/t9/output/s1/agent-g', 'the orchestrator takes patient-data hand-ins', { via: 'patient-data/+/output/+/+' }),
  can('porchlight-orchestrator', 'receive', 'agents/agent-a/telemetry', 'the orchestrator keeps the registry', { via: 'agents/+/telemetry' }),
  cannot('porchlight-orchestrator', 'publish', 'clients/client-1/tasks/t1/request', "the orchestrator forges a client's request"),
  cannot('porchlight-orchestrator', 'publish', 'clients/client-1/tasks/t1/cancel', "the orchestrator forges a client's cancel"),
  cannot('porchlight-orchestrator', 'publish', 'tasks/t1/output/s1/agent-a', "the orchestrator forges an agent's hand-in"),
  cannot('porchlight-orchestrator', 'publish', 'tasks/t1/proposal/agent-a', "the orchestrator forges an agent's bid"),
  cannot('porchlight-orchestrator', 'publish', 'tasks/t1/claim/s2/agent-a', "the orchestrator forges an agent's claim"),
  cannot('porchlight-orchestrator', 'publish', 'tasks/t2/output/pool/agent-b', 'the orchestrator forges the hand-in of a step named `pool` through its offer grant (`*` spans levels on IoT)'),
  cannot('porchlight-orchestrator', 'publish', 'tasks/t1/progress/assign/agent-a', 'the orchestrator forges progress of a step named `assign` through its assignment grant (`*` spans levels on IoT)'),
  cannot('porchlight-orchestrator', 'publish-retained', 'agents/agent-a/resume', "the orchestrator forges an agent's résumé"),

  // ---- observers -----------------------------------------------------------------------------
  can('observer-1', 'connect', 'observer-1', 'an observer connects with its own identity'),
  can('observer-1', 'receive', 'agents/agent-a/status', 'an observer sees the agent tree', { via: 'agents/#' }),
  can('observer-1', 'receive', 'agents/agent-a/telemetry', 'an observer sees telemetry', { via: 'agents/#' }),
  can('observer-1', 'receive', 'clients/client-1/tasks/t1/status', "an observer sees every task's status", { via: 'clients/+/tasks/+/status' }),
  can('observer-1', 'receive', 'clients/client-1/tasks/t1/result', "an observer sees every task's result", { via: 'clients/+/tasks/+/result' }),
  can('observer-1', 'receive', 'clients/client-2/tasks/t2/status', "an observer reads one task's status by its exact topic"),
  cannot('observer-1', 'connect', 'agent-a', "an observer takes over an agent's session"),
  cannot('observer-1', 'publish', 'clients/observer-1/tasks/t1/request', 'an observer submits tasks'),
  cannot('observer-1', 'publish-retained', 'clients/client-1/tasks/t1/status', 'an observer forges task status'),
  cannot('observer-1', 'publish-retained', 'agents/agent-a/status', 'an observer reports an agent offline'),
  cannot('observer-1', 'receive', 'clients/client-1/tasks/t1/request', 'an observer reads requests and their cancel hashes', { via: 'clients/+/tasks/+/request' }),
  cannot('observer-1', 'receive', 'clients/client-1/tasks/t1/cancel', 'an observer reads cancel secrets', { via: 'clients/+/tasks/+/cancel' }),
  cannot('observer-1', 'receive', 'clients/client-1/tasks/t1/output/s1', 'an observer reads step outputs', { via: 'clients/+/tasks/+/output/+' }),
  cannot('observer-1', 'receive', 'clients/client-1/tasks/t1/output/status', 'an observer reads the output of a step whose id is `status` by its exact topic'),
  cannot('observer-1', 'receive', 'clients/client-1/tasks/t1/progress/result', 'an observer reads the progress of a step whose id is `result` by its exact topic'),
  cannot('observer-1', 'receive', 'clients/client-g/patient-data/tasks/output/status', 'an observer without the gdpr accreditation reads a patient-data output through the first `*` of its status grant (task `tasks`, step `status`)'),
  cannot('observer-1', 'receive', 'tasks/t1/pool/gpu', 'an observer reads pool offers', { via: 'tasks/+/pool/+' }),
  cannot('observer-1', 'receive', 'tasks/t1/pool/gpu', "an observer joins a pool's shared subscription", { via: '$share/gpu/tasks/+/pool/gpu' }),
  cannot('observer-1', 'receive', 'tasks/t1/claim/s2/agent-a', 'an observer reads claims', { via: 'tasks/+/claim/+/+' }),
  cannot('observer-1', 'publish', 'tasks/t1/claim/s2/observer-1', 'an observer claims a pool step through the agent patterns'),
  cannot('observer-1', 'receive', 'tasks/t1/request', 'an observer reads calls for bids', { via: 'tasks/+/request' }),
  cannot('observer-1', 'receive', 'tasks/t1/assign/agent-a', 'an observer reads assignments and fencing tokens', { via: 'tasks/+/assign/+' }),
  cannot('observer-1', 'receive', 'tasks/t1/output/s1/agent-a', 'an observer reads hand-ins', { via: 'tasks/+/output/+/+' }),
  cannot('observer-1', 'receive', 'clients/client-g/patient-data/t9/result', 'an observer without the gdpr accreditation reads patient-data results', { via: 'clients/+/patient-data/+/result' }),
  can('ws-observer', 'connect', 'ws-observer', 'the web view connects with its own identity'),
  can('ws-observer', 'receive', 'clients/client-1/tasks/t1/status', 'the web view shows task status', { via: 'clients/+/tasks/+/status' }),
  can('ws-observer', 'receive', 'agents/agent-a/resume', 'the web view shows the agents', { via: 'agents/#' }),
  cannot('ws-observer', 'publish', 'clients/ws-observer/tasks/t1/request', 'the read-only web view submits tasks'),
  cannot('ws-observer', 'publish-retained', 'agents/agent-a/status', 'the read-only web view reports an agent offline'),
  cannot('ws-observer', 'receive', 'clients/client-1/tasks/t1/request', 'the web view reads requests', { via: 'clients/+/tasks/+/request' }),
  cannot('ws-observer', 'receive', 'tasks/t1/pool/gpu', 'the web view reads pool offers', { via: 'tasks/+/pool/+' }),
  cannot('ws-observer', 'connect', 'porchlight-orchestrator', "the read-only web view takes over the orchestrator's session"),
  cannot('ws-observer', 'connect', 'agent-a', "the read-only web view takes over an agent's session"),
  cannot('ws-observer', 'connect', 'client-1', "the read-only web view takes over a client's session"),
];


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

/**
 * What each function may publish through the IoT data plane: the kinds of the core entry points
 * its handler calls (core/publications.ts, infra/rules/catalogue.ts), nothing else.
 */
export const FUNCTION_ROWS: readonly FunctionProbeRow[] = [
  fnCan('intake', 'publish-retained', 'clients/client-1/tasks/t1/status', "intake acknowledges a request on the owner's tree"),
  fnCan('intake', 'publish-retained', 'clients/client-1/tasks/t3/result', 'intake rejects a misfiled phi request on the owner\'s tree'),
  fnCan('intake', 'publish', 'tasks/t1/request', 'intake calls for bids once it validated a request'),
  fnCan('intake', 'publish', 'patient-data/t9/request', 'intake calls for bids on patient-data tasks'),
  fnCan('intake', 'publish', 'clients/client-1/errors', 'intake tells a client why a request was refused'),
  fnCan('planner', 'publish', 'tasks/t1/assign/agent-a', 'the planner assigns steps'),
  fnCan('planner', 'publish', 'tasks/t1/pool/gpu', 'the planner offers pool steps'),
  fnCan('planner', 'publish-retained', 'tasks/t1/status', "the planner publishes the agents' task status"),
  fnCan('planner', 'publish', 'agents/agent-a/errors', 'the planner tells an agent why its bid was rejected'),
  fnCan('progress', 'publish-retained', 'clients/client-1/tasks/t1/output/s1', 'progress republishes an accepted output for the owner'),
  fnCan('progress', 'publish', 'clients/client-1/tasks/t1/progress/s1', "progress relays the live assignee's progress"),
  fnCan('progress', 'publish-retained', 'clients/client-g/patient-data/t9/result', 'progress finishes patient-data tasks'),
  fnCan('registry', 'publish', 'agents/agent-a/errors', 'the registry tells an agent why its résumé was rejected'),
  fnCan('presence', 'publish', 'tasks/t1/assign/agent-b', "presence re-assigns a departed agent's step"),
  fnCan('timer', 'publish-retained', 'clients/client-1/tasks/t1/output/s1', 'retention (timer) clears the retained outputs', { empty: true }),
  fnCan('timer', 'publish-retained', 'clients/client-1/tasks/t1/result', 'retention (timer) clears the retained result', { empty: true }),
  fnCan('timer', 'publish-retained', 'tasks/t1/status', "retention (timer) clears the agents' task status", { empty: true }),
  fnCan('sweeper', 'publish-retained', 'clients/client-1/tasks/t1/output/s1', 'retention (sweeper) clears the retained outputs', { empty: true }),
  fnCannot('intake', 'publish', 'clients/client-1/tasks/t1/progress/s1', 'only the function that takes in progress relays it'),
  fnCannot('timer', 'publish', 'clients/client-1/tasks/t1/progress/s1', 'only the function that takes in progress relays it'),
  fnCannot('presence', 'publish', 'agents/agent-a/errors', 'presence sends no rejection notices'),
  fnCannot('presence', 'publish', 'clients/client-1/errors', 'presence sends no refusal notices'),
  fnCannot('sweeper', 'publish', 'clients/client-1/errors', 'the sweeper sends no refusal notices'),
  fnCannot('planner', 'publish-retained', 'tasks/t1/request', 'a call for bids is never retained'),
  ...FUNCTION_NAMES.flatMap((fn) => [
    fnCannot(fn, 'publish', 'tasks/t1/output/s1/agent-a', "no function forges an agent's hand-in"),
    fnCannot(fn, 'publish', 'tasks/t1/progress/s1/agent-a', "no function forges an agent's progress hand-in"),
    fnCannot(fn, 'publish', 'clients/client-1/tasks/t1/request', "no function forges a client's request"),
  ]),
  fnCannot('progress', 'publish', 'clients/client-1/tasks/t1/cancel', "no function forges a client's cancel"),
  fnCannot('registry', 'publish', 'tasks/t1/proposal/agent-a', "no function forges an agent's bid"),
  fnCannot('registry', 'publish-retained', 'agents/agent-a/resume', "no function forges an agent's résumé"),
  fnCannot('presence', 'publish-retained', 'agents/agent-a/status', 'no function reports an agent offline in its name'),
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
    name: 'agents retain their own hand-ins on Mosquitto',
    on: ['mosquitto'],
    rows: ['agent-a publish-retained tasks/t1/output/s1/agent-a'],
    why: "Mosquitto's acl_file grants `write`, which covers RETAIN; it has no iot:RetainPublish. Harmless: only the orchestrator reads hand-in topics, and its rules see each message once as published, never a retained copy (retain handling 2)",
  },
  {
    name: 'Mosquitto grants every SUBSCRIBE',
    on: ['mosquitto'],
    rows: (row) => row.action === 'subscribe' && row.expect === 'deny',
    why: 'Mosquitto 2.0 acl_file checks read access per delivered message, not at SUBSCRIBE; the matching receive rows show nothing is delivered',
  },
];
