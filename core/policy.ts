/**
 * The policy model (ARCHITECTURE §5): which identity may do what on which topic, written once
 * and rendered twice — as AWS IoT policy documents (CDK) and as a Mosquitto ACL file (local
 * stack). Patterns are MQTT topic filters with a `{self}` placeholder for the caller's own
 * identity (thing name / certificate CN / client id, which Porchlight requires to be equal).
 *
 * Roles:
 * - `agent`: writes its own résumé/status/telemetry and its own proposals, hands in outputs and
 *   progress on topics ending in its own id (read by the orchestrator alone), reads calls for
 *   bids, its own assignments, pools, the agent-facing task status and its own errors. It may not
 *   read anybody else's assignments, nor anything on a client's tree.
 * - `client`: a tenant. Submits and cancels on its own tree (`clients/{self}/…`, read by the
 *   orchestrator alone) and reads only its own tasks' status, result, outputs and progress there,
 *   its own errors, and the agents' résumés and status.
 * - `orchestrator`: the only publisher of calls for bids, assignments, pool steps, task status,
 *   results, republished outputs and progress, and agent and client errors; reads everything it
 *   needs to run tasks.
 * - `observer`: read-only (the web view): all of `agents/#`, every task's status and result.
 *
 * Sensitive data classes (core/data-classes.ts) live under their own topic roots. A role's
 * task-tree rights apply to `tasks/` by default; a root of a sensitive class is added only by
 * holding that class's accreditation (e.g. `gdpr` → `patient-data/`). The orchestrator is the
 * system itself and always has every root.
 */
import { InvalidIdError } from './errors';
import { DATA_CLASSES, DEFAULT_TASK_ROOT, TASK_ROOTS } from './data-classes';
import { validateId } from './topics';

/** Every role the model knows. */
export const ROLES = ['agent', 'client', 'orchestrator', 'observer'] as const;
/** A role an identity plays. */
export type Role = (typeof ROLES)[number];

/** What a statement allows or denies. For `connect`, the patterns are client ids, not topics. */
export type PolicyAction = 'connect' | 'publish' | 'subscribe' | 'receive';

/** The placeholder for the caller's own identity in a pattern. */
export const SELF = '{self}';

/** One rule of the model. */
export interface PolicyStatement {
  readonly effect: 'allow' | 'deny';
  readonly actions: readonly PolicyAction[];
  /** MQTT topic filters (or client ids for `connect`), possibly containing {@link SELF}. */
  readonly topics: readonly string[];
  /** Why the rule exists, carried into the Mosquitto ACL as a comment. */
  readonly description: string;
}

/** The AWS IoT policy variable that stands for the connecting thing's name. */
export const THING_NAME_VARIABLE = '${iot:Connection.Thing.ThingName}';

/** The prefix of the IoT thing group that confers an accreditation: `accredit-<label>`. */
export const ACCREDITATION_GROUP_PREFIX = 'accredit-';

const READ: readonly PolicyAction[] = ['subscribe', 'receive'];

function allow(actions: readonly PolicyAction[], topics: readonly string[], description: string): PolicyStatement {
  return { effect: 'allow', actions, topics, description };
}

/** Returns `label` when it can name an accreditation (and thus a thing group); throws InvalidIdError otherwise. */
export function validateAccreditation(label: string): string {
  try {
    return validateId('pool', label);
  } catch (err) {
    throw new InvalidIdError(`accreditation ${JSON.stringify(label)} is not a valid label: ${(err as Error).message.replace(/^pool /, '')}`, { cause: err });
  }
}

/** The IoT thing group whose members hold `accreditation`, e.g. `accredit-gdpr`. */
export function accreditationGroupName(accreditation: string): string {
  return `${ACCREDITATION_GROUP_PREFIX}${validateAccreditation(accreditation)}`;
}

/** Accreditations that unlock a topic root, one per sensitive data class, deduplicated and sorted. */
export function grantingAccreditations(): string[] {
  return [...new Set(Object.values(DATA_CLASSES).map((d) => d.accreditation as string))].sort();
}

/** The sensitive topic roots an accreditation unlocks (none for a label that guards no data class). */
export function rootsForAccreditation(accreditation: string): string[] {
  validateAccreditation(accreditation);
  return Object.values(DATA_CLASSES).filter((d) => d.accreditation === accreditation).map((d) => d.root as string);
}

/** Rights that do not depend on a task root. */
function globalStatements(role: Role): PolicyStatement[] {
  switch (role) {
    case 'agent':
      return [
        allow(['connect'], [SELF], 'an agent connects only with its own identity as client id'),
        allow(['publish'], [`agents/${SELF}/resume`, `agents/${SELF}/status`, `agents/${SELF}/telemetry`], 'an agent writes only its own résumé, status and telemetry'),
        allow(READ, [`agents/${SELF}/errors`], 'an agent reads why its own messages were rejected'),
      ];
    case 'client':
      return [
        allow(['connect'], [SELF], 'a client connects only with its own identity as client id'),
        allow(READ, ['agents/+/resume', 'agents/+/status'], 'a client may see which agents exist and whether they are online'),
        allow(READ, [`clients/${SELF}/errors`], 'a client reads why its own messages were refused'),
      ];
    case 'orchestrator':
      return [
        allow(['connect'], [SELF], 'the orchestrator connects only with its own identity as client id'),
        allow(['publish'], ['agents/+/errors', 'clients/+/errors'], 'only the orchestrator tells agents and clients why their messages were rejected'),
        allow(READ, ['agents/+/resume', 'agents/+/status', 'agents/+/telemetry'], 'the orchestrator keeps the agent registry'),
      ];
    case 'observer':
      return [
        allow(['connect'], [SELF], 'an observer connects only with its own identity as client id'),
        allow(READ, ['agents/#'], 'an observer sees the whole agent tree, read-only'),
      ];
  }
}

/** Rights on one task topic root. */
function rootStatements(role: Role, root: string): PolicyStatement[] {
  const mine = `clients/${SELF}/${root}/+`;
  const anyClient = `clients/+/${root}/+`;
  switch (role) {
    case 'agent':
      return [
        allow(['publish'], [`${root}/+/proposal/${SELF}`], `an agent bids only under its own name (${root})`),
        allow(['publish'], [`${root}/+/output/+/${SELF}`, `${root}/+/progress/+/${SELF}`],
          `an agent hands in outputs and progress only under its own name, to the orchestrator alone; the fencing token proves it is the assignee (${root})`),
        allow(READ, [`${root}/+/request`, `${root}/+/assign/${SELF}`, `${root}/+/pool/+`, `$share/+/${root}/+/pool/+`, `${root}/+/status`],
          `an agent reads calls for bids, its own assignments (never another agent's), pool steps and task state for cancellation (${root})`),
      ];
    case 'client':
      return [
        allow(['publish'], [`${mine}/request`, `${mine}/cancel`], `a client submits and cancels tasks on its own tree, read by the orchestrator alone (${root})`),
        allow(READ, [`${mine}/status`, `${mine}/result`, `${mine}/output/+`, `${mine}/progress/+`], `a client watches its own tasks, never another client's (${root})`),
      ];
    case 'orchestrator':
      return [
        allow(['publish'], [`${root}/+/request`, `${root}/+/assign/+`, `${root}/+/pool/+`, `${root}/+/status`],
          `only the orchestrator calls for bids, assigns steps and publishes the agents' task status (${root})`),
        allow(['publish'], [`${anyClient}/status`, `${anyClient}/result`, `${anyClient}/output/+`, `${anyClient}/progress/+`],
          `only the orchestrator writes what clients read: status, results, accepted outputs and the live assignee's progress (${root})`),
        allow(READ, [`${anyClient}/request`, `${anyClient}/cancel`, `${root}/+/proposal/+`, `${root}/+/output/+/+`, `${root}/+/progress/+/+`],
          `the orchestrator consumes what clients and agents send (${root})`),
      ];
    case 'observer':
      return [allow(READ, [`${anyClient}/status`, `${anyClient}/result`], `an observer sees every task's status and result, read-only (${root})`)];
  }
}

function assertRole(role: Role): Role {
  if (!(ROLES as readonly string[]).includes(role)) throw new InvalidIdError(`unknown role ${JSON.stringify(role)}; expected one of ${ROLES.join(', ')}`);
  return role;
}

/**
 * The statements an accreditation adds to a role: the role's task-tree rights on every
 * sensitive root the accreditation unlocks. Empty for a label that guards no data class.
 */
export function accreditationGrant(role: Role, accreditation: string): PolicyStatement[] {
  assertRole(role);
  if (role === 'orchestrator') return [];
  return rootsForAccreditation(accreditation).flatMap((root) => rootStatements(role, root));
}

/** The task topic roots a role reaches with the given accreditations. */
export function taskRootsFor(role: Role, accreditations: readonly string[] = []): string[] {
  assertRole(role);
  if (role === 'orchestrator') return [...TASK_ROOTS];
  const roots = new Set<string>([DEFAULT_TASK_ROOT]);
  for (const a of accreditations) for (const r of rootsForAccreditation(a)) roots.add(r);
  return TASK_ROOTS.filter((r) => roots.has(r));
}

/** Everything a role with the given accreditations may do. */
export function roleStatements(role: Role, accreditations: readonly string[] = []): PolicyStatement[] {
  assertRole(role);
  return [...globalStatements(role), ...taskRootsFor(role, accreditations).flatMap((root) => rootStatements(role, root))];
}

// ---------------------------------------------------------------------------------------------
// AWS IoT rendering
// ---------------------------------------------------------------------------------------------

/** An AWS IoT policy statement. */
export interface IotPolicyStatement {
  readonly Effect: 'Allow' | 'Deny';
  readonly Action: string[];
  readonly Resource: string[];
}

/** An AWS IoT policy document. */
export interface IotPolicyDocument {
  readonly Version: '2012-10-17';
  readonly Statement: IotPolicyStatement[];
}

/** Where the rendered ARNs point. Values may be CDK tokens (env-agnostic stacks). */
export interface IotRenderOptions {
  readonly region: string;
  readonly account: string;
  /** @default 'aws' */
  readonly partition?: string;
}

/** AWS IoT counts policy size without whitespace; documents larger than this are refused. */
export const IOT_POLICY_MAX_CHARS = 2048;

/** Topics published with RETAIN (docs/PROTOCOL.md); IoT Core authorises those with iot:RetainPublish. */
function isRetainedTopic(pattern: string): boolean {
  const s = pattern.split('/');
  if (s[0] === 'agents') return s.length === 3 && (s[2] === 'resume' || s[2] === 'status');
  if (s[0] === 'clients') return (s.length === 5 && (s[4] === 'status' || s[4] === 'result')) || (s.length === 6 && s[4] === 'output');
  if (!TASK_ROOTS.includes(s[0] ?? '')) return false;
  return s.length === 3 && s[2] === 'status';
}

/**
 * An MQTT pattern as an IoT policy resource. IoT policies treat `+` and `#` literally and use
 * IAM-style `*` (any characters, `/` included), so both MQTT wildcards become `*`. For
 * `topicfilter/` resources this also admits the literal filter the client sends (`*` matches a
 * literal `+`), so one resource covers both the wildcard subscription and an exact one.
 */
function iotPattern(pattern: string): string {
  return pattern
    .split('/')
    .map((seg) => (seg === '+' || seg === '#' ? '*' : seg === SELF ? THING_NAME_VARIABLE : seg))
    .join('/');
}

/**
 * `*` spans levels, so `tasks/*\/status` would also match `tasks/t1/assign/status` — the
 * assignment of an agent whose id happens to be `status`. For every granted three-level task
 * pattern `<root>/+/<word>` this adds a deny on `<root>/*\/*\/<word>`, which matches only the
 * four-level (and deeper) topics ending in that word and never the three-level grant itself.
 * Explicit deny wins in IoT policies, so an id equal to `request`, `status`, `result` or
 * `cancel` is unusable as an agent, step or pool id on IoT Core: it fails closed.
 */
function collisionGuards(statements: readonly PolicyStatement[]): { topic: string; action: string }[] {
  const guards: { topic: string; action: string }[] = [];
  const iotAction = { publish: 'iot:Publish', subscribe: 'iot:Subscribe', receive: 'iot:Receive' } as const;
  for (const st of statements) {
    if (st.effect !== 'allow') continue;
    for (const action of st.actions) {
      if (action === 'connect') continue;
      for (const topic of st.topics) {
        const s = topic.split('/');
        if (s.length === 3 && TASK_ROOTS.includes(s[0] ?? '') && s[1] === '+' && s[2] !== '+' && s[2] !== '#') {
          guards.push({ topic: `${s[0]}/+/+/${s[2]}`, action: iotAction[action] });
          if (action === 'publish') guards.push({ topic: `${s[0]}/+/+/${s[2]}`, action: 'iot:RetainPublish' });
        }
      }
    }
  }
  return guards;
}

function arnPrefix(opts: IotRenderOptions): string {
  for (const [name, value] of [['region', opts.region], ['account', opts.account], ['partition', opts.partition ?? 'aws']] as const) {
    if (typeof value !== 'string' || value.length === 0 || /[\s:/]/.test(value)) {
      throw new InvalidIdError(`IoT policy ${name} ${JSON.stringify(value)} is empty or contains whitespace, ':' or '/'`);
    }
  }
  return `arn:${opts.partition ?? 'aws'}:iot:${opts.region}:${opts.account}:`;
}

const ACTION_ORDER = ['iot:Connect', 'iot:Publish', 'iot:RetainPublish', 'iot:Subscribe', 'iot:Receive'];

/**
 * Renders model statements to an IoT policy document. Resources that take the same actions
 * share one statement (e.g. a retained topic's iot:Publish and iot:RetainPublish), which keeps
 * documents under IoT's 2048-character limit.
 */
export function renderIotStatements(statements: readonly PolicyStatement[], opts: IotRenderOptions): IotPolicyDocument {
  const prefix = arnPrefix(opts);
  // effect → resource → actions, in first-seen order
  const byResource = new Map<'Allow' | 'Deny', Map<string, Set<string>>>([['Allow', new Map()], ['Deny', new Map()]]);
  const add = (effect: 'Allow' | 'Deny', resource: string, action: string): void => {
    const m = byResource.get(effect) ?? new Map<string, Set<string>>();
    const actions = m.get(resource) ?? new Set<string>();
    actions.add(action);
    m.set(resource, actions);
  };
  for (const st of statements) {
    const effect = st.effect === 'allow' ? 'Allow' : 'Deny';
    for (const topic of st.topics) {
      const res = iotPattern(topic);
      for (const action of st.actions) {
        switch (action) {
          case 'connect':
            add(effect, `client/${res}`, 'iot:Connect');
            break;
          case 'publish':
            add(effect, `topic/${res}`, 'iot:Publish');
            if (isRetainedTopic(topic)) add(effect, `topic/${res}`, 'iot:RetainPublish');
            break;
          case 'subscribe':
            add(effect, `topicfilter/${res}`, 'iot:Subscribe');
            break;
          case 'receive':
            // IoT Core checks iot:Receive against the topic a message was published on, never
            // against `$share/…`, so a shared-subscription pattern needs only its topic filter.
            if (!topic.startsWith('$share/')) add(effect, `topic/${res}`, 'iot:Receive');
            break;
        }
      }
    }
  }
  for (const guard of collisionGuards(statements)) {
    // `topic*` covers both `topic/` and `topicfilter/` resources: one deny per word.
    add('Deny', `topic*/${iotPattern(guard.topic)}`, guard.action);
  }
  const Statement: IotPolicyStatement[] = [];
  for (const effect of ['Allow', 'Deny'] as const) {
    const groups = new Map<string, string[]>();
    for (const [resource, actions] of byResource.get(effect) ?? []) {
      const key = [...actions].sort((x, y) => ACTION_ORDER.indexOf(x) - ACTION_ORDER.indexOf(y)).join(',');
      groups.set(key, [...(groups.get(key) ?? []), prefix + resource]);
    }
    const keys = [...groups.keys()].sort((x, y) => ACTION_ORDER.indexOf(x.split(',')[0] ?? '') - ACTION_ORDER.indexOf(y.split(',')[0] ?? '') || x.localeCompare(y));
    for (const key of keys) Statement.push({ Effect: effect, Action: key.split(','), Resource: groups.get(key) ?? [] });
  }
  return { Version: '2012-10-17', Statement };
}

/**
 * Splits a document into documents of at most `maxChars` (IoT's limit by default), keeping
 * statement order. Attached together to one principal they grant exactly what the original
 * does: IoT evaluates the union of a principal's policies, and an explicit deny in any of them
 * wins. Throws when a single resource does not fit.
 */
export function splitIotPolicy(doc: IotPolicyDocument, maxChars = IOT_POLICY_MAX_CHARS): IotPolicyDocument[] {
  const parts: IotPolicyDocument[] = [];
  let current: IotPolicyStatement[] = [];
  const size = (statements: IotPolicyStatement[]): number => iotPolicySize({ Version: '2012-10-17', Statement: statements });
  for (const st of doc.Statement) {
    for (const resource of st.Resource) {
      const last = current[current.length - 1];
      const merged = last && last.Effect === st.Effect && last.Action.join() === st.Action.join()
        ? [...current.slice(0, -1), { ...last, Resource: [...last.Resource, resource] }]
        : [...current, { Effect: st.Effect, Action: [...st.Action], Resource: [resource] }];
      if (size(merged) <= maxChars) {
        current = merged;
        continue;
      }
      if (current.length === 0) throw new InvalidIdError(`IoT policy resource ${resource} alone exceeds ${maxChars} characters`);
      parts.push({ Version: '2012-10-17', Statement: current });
      current = [{ Effect: st.Effect, Action: [...st.Action], Resource: [resource] }];
      if (size(current) > maxChars) throw new InvalidIdError(`IoT policy resource ${resource} alone exceeds ${maxChars} characters`);
    }
  }
  if (current.length > 0) parts.push({ Version: '2012-10-17', Statement: current });
  return parts;
}

/**
 * The AWS IoT policy for a role (plus the grants of `accreditations`, when given). Agents,
 * clients and observers are IoT things: `{self}` becomes `${iot:Connection.Thing.ThingName}`,
 * so iot:Connect succeeds only when the MQTT client id equals the thing name the certificate is
 * attached to.
 */
export function renderIotPolicy(role: Role, opts: IotRenderOptions & { readonly accreditations?: readonly string[] }): IotPolicyDocument {
  return renderIotStatements(roleStatements(role, opts.accreditations ?? []), opts);
}

/**
 * The policy attached to an accreditation's thing group (`accredit-<label>`): only what the
 * accreditation adds for `role` (default `agent`). Members also hold their role's base policy.
 */
export function renderIotAccreditationPolicy(accreditation: string, opts: IotRenderOptions & { readonly role?: Role }): IotPolicyDocument {
  const grant = accreditationGrant(opts.role ?? 'agent', accreditation);
  if (grant.length === 0) throw new InvalidIdError(`accreditation ${JSON.stringify(accreditation)} unlocks no data class; known: ${grantingAccreditations().join(', ')}`);
  return renderIotStatements(grant, opts);
}

/** Size of a policy document as AWS IoT counts it (JSON without whitespace). */
export function iotPolicySize(doc: IotPolicyDocument): number {
  return JSON.stringify(doc).length;
}

// ---------------------------------------------------------------------------------------------
// Mosquitto rendering
// ---------------------------------------------------------------------------------------------

/** One identity the local CA issued a certificate for (its CN is the Mosquitto username). */
export interface AclIdentity {
  readonly id: string;
  readonly role: Role;
  readonly accreditations: readonly string[];
}

type AclAccess = 'read' | 'write' | 'readwrite';

/** Mosquitto 2 acl_file access for model actions: `read` covers subscribe and receive. */
function aclAccess(actions: readonly PolicyAction[]): AclAccess | undefined {
  const read = actions.includes('subscribe') || actions.includes('receive');
  const write = actions.includes('publish');
  return read && write ? 'readwrite' : read ? 'read' : write ? 'write' : undefined;
}

/** Merges (topic → access) across statements, keeping first-seen order. */
function aclLines(statements: readonly PolicyStatement[], self: string | undefined): Map<string, AclAccess> {
  const out = new Map<string, AclAccess>();
  for (const st of statements) {
    if (st.effect !== 'allow') continue;
    const access = aclAccess(st.actions);
    if (!access) continue;
    for (const pattern of st.topics) {
      // Mosquitto checks a `$share/<group>/<filter>` subscription's messages against the
      // topic they were published on (verified on Mosquitto 2.0.11), so the plain pattern
      // already covers the shared form.
      if (pattern.startsWith('$share/')) continue;
      const topic = self === undefined ? pattern : pattern.split('/').map((seg) => (seg === SELF ? self : seg)).join('/');
      const prev = out.get(topic);
      out.set(topic, prev === undefined || prev === access ? access : 'readwrite');
    }
  }
  return out;
}

/** The same statements keeping only their `{self}` topics (statements left empty are dropped). */
function selfScoped(statements: readonly PolicyStatement[]): PolicyStatement[] {
  return statements
    .map((st) => ({ ...st, topics: st.topics.filter((t) => t.split('/').includes(SELF)) }))
    .filter((st) => st.topics.length > 0);
}

/**
 * Renders the Mosquitto 2 acl_file for the local stack (TLS with `use_identity_as_username`,
 * so the username is the certificate CN).
 *
 * - An agent's own-namespace rights on the default root are `pattern` lines with `%u`.
 * - Every listed identity gets a `user <id>` block with the rest of its role's rights and its
 *   accreditation grants, its id spliced in. Agents need a block too: Mosquitto pattern lines
 *   apply to every user, so rights not scoped to `%u` (reading requests, writing outputs) can
 *   only be given per user, or clients and observers would hold them as well.
 * - Non-agent identities get `topic deny` lines for the agent-namespace topics of their own id,
 *   so a client cannot pose as an agent through the patterns; in Mosquitto 2 `deny` wins over
 *   any grant for that topic, and no non-agent role needs those topics.
 *
 * Ids and accreditation labels are validated before they are spliced; a duplicate id is an
 * error. An identity that is not listed holds only the `%u` patterns, which read no request.
 */
export function renderMosquittoAcl(opts: { readonly identities: readonly AclIdentity[] }): string {
  const agentSelf = selfScoped(roleStatements('agent'));
  const lines: string[] = [
    '# Porchlight Mosquitto ACL, rendered from core/policy.ts. Do not edit: regenerate it.',
    '# read = subscribe + receive; write = publish; deny wins over any grant (Mosquitto 2).',
    '',
    "# Every identity: an agent's own namespace (%u is the certificate CN).",
  ];
  for (const [topic, access] of aclLines(agentSelf, '%u')) lines.push(`pattern ${access} ${topic}`);

  const seen = new Set<string>();
  for (const identity of opts.identities) {
    assertRole(identity.role);
    const id = validateId(identity.role === 'agent' ? 'agentId' : 'clientId', identity.id);
    if (seen.has(id)) throw new InvalidIdError(`identity ${JSON.stringify(id)} is listed twice`);
    seen.add(id);
    const accreditations = identity.accreditations.map(validateAccreditation);
    const patterned = aclLines(agentSelf, id);
    lines.push('', `# ${id}: ${identity.role}${accreditations.length > 0 ? `, accredited ${accreditations.join(', ')}` : ''}`, `user ${id}`);
    if (identity.role !== 'agent') {
      for (const topic of patterned.keys()) lines.push(`topic deny ${topic}`);
    }
    for (const [topic, access] of aclLines(roleStatements(identity.role, accreditations), id)) {
      if (identity.role === 'agent' && patterned.get(topic) === access) continue;
      lines.push(`topic ${access} ${topic}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
