/**
 * The policy model (ARCHITECTURE §5): which identity may do what on which topic, written once
 * and rendered twice — as AWS IoT policy documents (CDK) and as a Mosquitto ACL file (local
 * stack). Patterns are MQTT topic filters with a `{self}` placeholder for the caller's own
 * identity (thing name / certificate CN / client id, which Porchlight requires to be equal).
 *
 * Roles:
 * - `agent`: writes its own résumé/status/telemetry and its own proposals, hands in outputs and
 *   progress on topics ending in its own id (read by the orchestrator alone), reads calls for
 *   bids, its own assignments, the agent-facing task status and its own errors. It may not read
 *   anybody else's assignments, nor anything on a client's tree. Pools are membership: only a
 *   pool's members read its offers and claim them ({@link poolGrant}).
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
import { PUBLICATIONS, RETAINED_TOPIC_KINDS } from './publications';
import { parseTopic, validateId } from './topics';

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
        // What it publishes (errors included) comes from the publication catalogue: publicationStatements.
        allow(['connect'], [SELF], 'the orchestrator connects only with its own identity as client id'),
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
        allow(READ, [`${root}/+/request`, `${root}/+/assign/${SELF}`, `${root}/+/status`],
          `an agent reads calls for bids, its own assignments (never another agent's) and task state for cancellation (${root})`),
      ];
    case 'client':
      return [
        allow(['publish'], [`${mine}/request`, `${mine}/cancel`], `a client submits and cancels tasks on its own tree, read by the orchestrator alone (${root})`),
        allow(READ, [`${mine}/status`, `${mine}/result`, `${mine}/output/+`, `${mine}/progress/+`], `a client watches its own tasks, never another client's (${root})`),
      ];
    case 'orchestrator':
      return [
        // Publishing (calls for bids, assignments, offers, every status, result, output and progress
        // clients read) is granted once, from the publication catalogue: publicationStatements.
        allow(READ, [`${anyClient}/request`, `${anyClient}/cancel`, `${root}/+/proposal/+`, `${root}/+/claim/+/+`, `${root}/+/output/+/+`, `${root}/+/progress/+/+`],
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

/** The prefix of the IoT thing group whose members form a pool: `pool-<name>`. */
export const POOL_GROUP_PREFIX = 'pool-';

/** The IoT thing group whose members form `pool`, e.g. `pool-render`. */
export function poolGroupName(pool: string): string {
  return `${POOL_GROUP_PREFIX}${validateId('pool', pool)}`;
}

/**
 * The IoT thing group whose members may read `pool`'s offers under the roots `accreditation`
 * unlocks, e.g. `accredit-gdpr-pool-render`. IoT policies cannot test group membership, so the
 * rights that need both (a pool member holding the accreditation) are a group of their own; its
 * members belong in `pool-<name>` and `accredit-<label>` too.
 */
export function poolAccreditationGroupName(pool: string, accreditation: string): string {
  return `${accreditationGroupName(accreditation)}-${poolGroupName(pool)}`;
}

/** A pool member's rights under one task root: read the pool's offers (plain or shared) and claim them under its own id. */
function poolRootStatements(pool: string, root: string): PolicyStatement[] {
  return [
    allow(READ, [`${root}/+/pool/${pool}`, `$share/${pool}/${root}/+/pool/${pool}`], `a member of pool ${pool} reads its offers, and only members do (${root})`),
    allow(['publish'], [`${root}/+/claim/+/${SELF}`], `a pool member claims an offered step under its own name, to the orchestrator alone (${root})`),
  ];
}

/**
 * The statements membership of `pool` adds to a role: for an agent, reading the pool's offers
 * and claiming them, under `tasks/` and every root its accreditations unlock (so a pool step of a
 * sensitive data class reaches only members that may see that class). Empty for other roles.
 */
export function poolGrant(role: Role, pool: string, accreditations: readonly string[] = []): PolicyStatement[] {
  assertRole(role);
  validateId('pool', pool);
  if (role !== 'agent') return [];
  return taskRootsFor(role, accreditations).flatMap((root) => poolRootStatements(pool, root));
}

/** The task topic roots a role reaches with the given accreditations. */
export function taskRootsFor(role: Role, accreditations: readonly string[] = []): string[] {
  assertRole(role);
  if (role === 'orchestrator') return [...TASK_ROOTS];
  const roots = new Set<string>([DEFAULT_TASK_ROOT]);
  for (const a of accreditations) for (const r of rootsForAccreditation(a)) roots.add(r);
  return TASK_ROOTS.filter((r) => roots.has(r));
}

/**
 * What the orchestrator identity publishes, derived from the publication catalogue so it cannot
 * fall behind what core emits: without it, clearing retained outputs after retention (which only
 * agents otherwise publish) is refused by the broker.
 */
function publicationStatements(role: Role): PolicyStatement[] {
  if (role !== 'orchestrator') return [];
  const filters = [...new Set(Object.values(PUBLICATIONS).flatMap((p) => p.filters))];
  return [allow(['publish'], filters, 'the orchestrator publishes every kind core publishes (core/publications.ts), clearing retained outputs included')];
}

/** Everything a role with the given accreditations may do. */
export function roleStatements(role: Role, accreditations: readonly string[] = []): PolicyStatement[] {
  assertRole(role);
  return [...globalStatements(role), ...taskRootsFor(role, accreditations).flatMap((root) => rootStatements(role, root)), ...publicationStatements(role)];
}

// ---------------------------------------------------------------------------------------------
// AWS IoT rendering
// ---------------------------------------------------------------------------------------------

/** IAM-style condition block: operator → key → value. */
export type IotCondition = Readonly<Record<string, Readonly<Record<string, string>>>>;

/** An AWS IoT policy statement. */
export interface IotPolicyStatement {
  readonly Effect: 'Allow' | 'Deny';
  readonly Action: string[];
  readonly Resource: string[];
  readonly Condition?: IotCondition;
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

/** The policy variable that is `true` only when the certificate is attached to the thing named by the client id. */
export const THING_ATTACHED_VARIABLE = 'iot:Connection.Thing.IsAttached';

/** The policy variable holding the connecting thing's thing type. */
export const THING_TYPE_VARIABLE = 'iot:Connection.Thing.ThingTypeName';

/**
 * Connecting needs the certificate's thing: without this a certificate carrying a role policy
 * could connect under any client id whose thing it is not attached to, and the thing-name
 * variable in every other resource would name a thing the certificate does not own.
 */
const CONNECT_CONDITION: IotCondition = { Bool: { [THING_ATTACHED_VARIABLE]: 'true' } };

/** The default prefix of Porchlight's IoT names (policies, thing types). */
export const DEFAULT_IOT_NAME_PREFIX = 'porchlight';

/**
 * The IoT thing type an identity of `role` is registered with, e.g. `porchlight-agent`. On AWS
 * the thing type is what tells roles apart inside an accreditation group's policy: the group's
 * grants for each role are conditioned on it (see {@link renderIotAccreditationPolicies}).
 */
export function roleThingTypeName(role: Role, prefix = DEFAULT_IOT_NAME_PREFIX): string {
  assertRole(role);
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(prefix)) throw new InvalidIdError(`IoT name prefix ${JSON.stringify(prefix)} must be 1-64 letters, digits, '_' or '-'`);
  return `${prefix}-${role}`;
}

/** Roles an accreditation can add rights to (the orchestrator already holds every root). */
export function accreditableRoles(): Role[] {
  return ROLES.filter((role) => grantingAccreditations().some((a) => accreditationGrant(role, a).length > 0));
}

/** A sentinel id standing in for wildcards and `{self}` when a pattern is classified by parseTopic. */
const PATTERN_ID = 'pattern:id';

/** Whether a publish pattern is of a retained kind (core/publications.ts); IoT Core then also checks iot:RetainPublish. */
function isRetainedTopic(pattern: string): boolean {
  try {
    const concrete = pattern.split('/').map((seg) => (seg === '+' || seg === SELF ? PATTERN_ID : seg)).join('/');
    return RETAINED_TOPIC_KINDS.has(parseTopic(concrete).kind);
  } catch {
    // `#` or a topic outside the tree: no RetainPublish (fails closed).
    return false;
  }
}

/**
 * An MQTT pattern as an IoT policy resource. IoT policies treat `+` and `#` literally and use
 * IAM-style `*` (any characters, `/` included), so both MQTT wildcards become `*`. For
 * `topicfilter/` resources this also admits the literal filter the client sends (`*` matches a
 * literal `+`), so one resource covers both the wildcard subscription and an exact one.
 */
export function iotTopicPattern(pattern: string): string {
  return pattern
    .split('/')
    .map((seg) => (seg === '+' || seg === '#' ? '*' : seg === SELF ? THING_NAME_VARIABLE : seg))
    .join('/');
}

/**
 * `*` spans levels, so an IoT resource rendered from an MQTT pattern also matches deeper topics:
 * `tasks/*\/status` matches `tasks/t1/assign/status` (the assignment of an agent whose id is
 * `status`), `clients/*\/tasks/*\/status` the output `clients/c1/tasks/t1/output/status` of a
 * step named `status` (and, through its first `*`, `clients/c1/patient-data/tasks/output/status`),
 * `tasks/*\/pool/gpu` the hand-in `tasks/t1/output/pool/gpu`. For every `+` of a granted pattern
 * this adds a deny on the pattern with that `+` replaced by `+/+` (`tasks/*\/*\/status`,
 * `clients/*\/*\/tasks/*\/status`, `clients/*\/tasks/*\/*\/status`, …). Each such deny has one
 * literal `/` more than the grant, so it never matches a topic of the grant's own depth; and a
 * deeper topic matching the grant has one of the grant's `*` spanning a `/`, so it matches the deny
 * of that `*`. With its guards, every grant matches exactly the topics its MQTT pattern does (a
 * trailing `#` is meant to span levels and gets none). Explicit deny wins in IoT policies, so an id
 * equal to a topic word (e.g. a step named `status`, or `proposal` for hand-ins) can be unusable on
 * IoT Core: it fails closed. IoT Core checks iot:Receive against the topic a message was published
 * on, never `$share/…`, so a shared-subscription pattern is guarded for iot:Subscribe only.
 */
function collisionGuards(statements: readonly PolicyStatement[]): { topic: string; action: string }[] {
  const guards: { topic: string; action: string }[] = [];
  const iotAction = { publish: 'iot:Publish', subscribe: 'iot:Subscribe', receive: 'iot:Receive' } as const;
  for (const st of statements) {
    if (st.effect !== 'allow') continue;
    for (const action of st.actions) {
      if (action === 'connect') continue;
      for (const topic of st.topics) {
        if (action === 'receive' && topic.startsWith('$share/')) continue;
        const s = topic.split('/');
        s.forEach((seg, i) => {
          if (seg !== '+') return;
          const guard = [...s.slice(0, i), '+', '+', ...s.slice(i + 1)].join('/');
          guards.push({ topic: guard, action: iotAction[action] });
          if (action === 'publish') guards.push({ topic: guard, action: 'iot:RetainPublish' });
        });
      }
    }
  }
  return guards;
}

/**
 * Whether every resource the IoT glob `pattern` matches is matched by `cover` too (`*` is the only
 * wildcard the renderer writes). Decided by matching `cover` against `pattern` read as text, where a
 * `*` of `pattern` can be consumed only by a `*` of `cover`: sound, which is all pruning needs.
 */
function globCovers(cover: string, pattern: string): boolean {
  // reach[j]: cover[0..i) can match pattern[0..j)
  let reach: boolean[] = Array.from({ length: pattern.length + 1 }, (_, j) => j === 0);
  for (const c of cover) {
    const next = new Array<boolean>(pattern.length + 1).fill(false);
    for (let j = 0; j <= pattern.length; j += 1) {
      if (c === '*') next[j] = reach[j] === true || (j > 0 && next[j - 1] === true);
      else next[j] = j > 0 && reach[j - 1] === true && pattern[j - 1] === c && c !== '*';
    }
    reach = next;
  }
  return reach[pattern.length] === true;
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

/** Model statements that share an IoT condition (e.g. one role's share of an accreditation grant). */
interface ConditionedStatements {
  readonly statements: readonly PolicyStatement[];
  readonly condition?: IotCondition;
}

function mergeConditions(a: IotCondition | undefined, b: IotCondition | undefined): IotCondition | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  const out: Record<string, Record<string, string>> = {};
  for (const c of [a, b]) for (const [op, kv] of Object.entries(c)) out[op] = { ...out[op], ...kv };
  return out;
}

/**
 * Renders groups of model statements to one IoT policy document, each group's statements (and the
 * collision guards derived from its grants) under the group's condition. Resources that take the
 * same actions under the same condition share one statement (e.g. a retained topic's iot:Publish
 * and iot:RetainPublish), which keeps documents small. Connect is always conditioned on
 * {@link THING_ATTACHED_VARIABLE}.
 */
function renderGroups(groups: readonly ConditionedStatements[], opts: IotRenderOptions): IotPolicyDocument {
  const prefix = arnPrefix(opts);
  // (effect, condition) → resource → actions, in first-seen order
  const byKey = new Map<string, { effect: 'Allow' | 'Deny'; condition?: IotCondition; resources: Map<string, Set<string>> }>();
  const add = (effect: 'Allow' | 'Deny', condition: IotCondition | undefined, resource: string, action: string): void => {
    const key = `${effect}|${JSON.stringify(condition ?? null)}`;
    const slot = byKey.get(key) ?? { effect, ...(condition !== undefined ? { condition } : {}), resources: new Map<string, Set<string>>() };
    byKey.set(key, slot);
    const actions = slot.resources.get(resource) ?? new Set<string>();
    actions.add(action);
    slot.resources.set(resource, actions);
  };
  for (const group of groups) {
    for (const st of group.statements) {
      const effect = st.effect === 'allow' ? 'Allow' : 'Deny';
      for (const topic of st.topics) {
        const res = iotTopicPattern(topic);
        for (const action of st.actions) {
          switch (action) {
            case 'connect':
              add(effect, mergeConditions(group.condition, CONNECT_CONDITION), `client/${res}`, 'iot:Connect');
              break;
            case 'publish':
              add(effect, group.condition, `topic/${res}`, 'iot:Publish');
              if (isRetainedTopic(topic)) add(effect, group.condition, `topic/${res}`, 'iot:RetainPublish');
              break;
            case 'subscribe':
              add(effect, group.condition, `topicfilter/${res}`, 'iot:Subscribe');
              break;
            case 'receive':
              // IoT Core checks iot:Receive against the topic a message was published on, never
              // against `$share/…`, so a shared-subscription pattern needs only its topic filter.
              if (!topic.startsWith('$share/')) add(effect, group.condition, `topic/${res}`, 'iot:Receive');
              break;
          }
        }
      }
    }
  }
  // `topic*` covers both `topic/` and `topicfilter/` resources: one deny per guard. A guard that
  // another one under the same condition and action already covers is left out (it adds nothing
  // but characters): `topic*/tasks/*\/*\/status` covers `topic*/clients/*\/tasks/*\/*\/status`.
  const guards = groups.flatMap((group) => collisionGuards(group.statements).map((g) => ({
    condition: group.condition, action: g.action, resource: `topic*/${iotTopicPattern(g.topic)}`,
  })));
  const sameSlot = (a: (typeof guards)[number], b: (typeof guards)[number]): boolean =>
    a.action === b.action && JSON.stringify(a.condition ?? null) === JSON.stringify(b.condition ?? null);
  guards.forEach((guard, i) => {
    const covered = guards.some((other, j) => j !== i && sameSlot(guard, other) && other.resource !== guard.resource && globCovers(other.resource, guard.resource));
    if (!covered) add('Deny', guard.condition, guard.resource, guard.action);
  });
  const rank = (actions: string): number => ACTION_ORDER.indexOf(actions.split(',')[0] ?? '');
  const Statement: IotPolicyStatement[] = [];
  for (const effect of ['Allow', 'Deny'] as const) {
    const merged = new Map<string, { actions: string; condition?: IotCondition; resources: string[] }>();
    for (const slot of byKey.values()) {
      if (slot.effect !== effect) continue;
      for (const [resource, actions] of slot.resources) {
        const actionKey = [...actions].sort((x, y) => ACTION_ORDER.indexOf(x) - ACTION_ORDER.indexOf(y)).join(',');
        const key = `${actionKey}|${JSON.stringify(slot.condition ?? null)}`;
        const m = merged.get(key) ?? { actions: actionKey, ...(slot.condition !== undefined ? { condition: slot.condition } : {}), resources: [] };
        m.resources.push(prefix + resource);
        merged.set(key, m);
      }
    }
    const ordered = [...merged.entries()].sort(([kx, x], [ky, y]) => rank(x.actions) - rank(y.actions) || kx.localeCompare(ky));
    for (const [, m] of ordered) {
      Statement.push({ Effect: effect, Action: m.actions.split(','), Resource: m.resources, ...(m.condition !== undefined ? { Condition: m.condition } : {}) });
    }
  }
  return { Version: '2012-10-17', Statement };
}

/** Renders model statements to one IoT policy document (see {@link renderIotPolicies} for deployable parts). */
export function renderIotStatements(statements: readonly PolicyStatement[], opts: IotRenderOptions): IotPolicyDocument {
  return renderGroups([{ statements }], opts);
}

/**
 * Renders groups of statements as IoT policy documents of at most `maxChars` each (IoT's limit),
 * every one safe on its own: a part carries the collision guards of the grants it holds, and the
 * model's explicit deny statements go into every part, so attaching only some parts can take
 * rights away but never widen them. Grants are packed in order, one topic at a time.
 * Throws when a single grant with its guards and the denies does not fit.
 */
function renderParts(groups: readonly ConditionedStatements[], opts: IotRenderOptions, maxChars: number): IotPolicyDocument[] {
  const denies: ConditionedStatements[] = groups
    .map((g) => ({ ...g, statements: g.statements.filter((s) => s.effect === 'deny') }))
    .filter((g) => g.statements.length > 0);
  // One unit per (condition, topic), its actions merged across statements: a topic granted twice
  // (e.g. by a root statement and by the publication catalogue) then lands, with its guards, in one
  // part instead of two.
  const byTopic = new Map<string, { group: ConditionedStatements; statement: PolicyStatement; actions: Set<PolicyAction> }>();
  for (const g of groups) {
    for (const st of g.statements) {
      if (st.effect !== 'allow') continue;
      for (const topic of st.topics) {
        const key = `${JSON.stringify(g.condition ?? null)}|${topic}`;
        const unit = byTopic.get(key) ?? { group: g, statement: { ...st, topics: [topic] }, actions: new Set<PolicyAction>() };
        for (const a of st.actions) unit.actions.add(a);
        byTopic.set(key, unit);
      }
    }
  }
  const units: ConditionedStatements[] = [...byTopic.values()].map(({ group, statement, actions }) => ({
    ...group,
    statements: [{ ...statement, actions: [...actions] }],
  }));
  const render = (chosen: readonly ConditionedStatements[]): IotPolicyDocument => renderGroups([...chosen, ...denies], opts);
  // First fit: each grant goes into the first part it still fits in, so a large grant that opens a
  // new part does not leave the room in earlier parts unused.
  const bins: ConditionedStatements[][] = [];
  for (const unit of units) {
    const bin = bins.find((b) => iotPolicySize(render([...b, unit])) <= maxChars);
    if (bin !== undefined) {
      bin.push(unit);
      continue;
    }
    if (iotPolicySize(render([unit])) > maxChars) {
      throw new InvalidIdError(`IoT policy grant ${unit.statements[0]?.topics[0] ?? ''} with its guards and denies alone exceeds ${maxChars} characters`);
    }
    bins.push([unit]);
  }
  const parts = bins.map(render);
  if (parts.length === 0) parts.push(render([]));
  return parts;
}

/**
 * The deployable IoT policy documents of a role (`<name>`, `<name>-2`, …), each within IoT's size
 * limit and safe on its own (see {@link renderParts}). Agents, clients and observers are IoT
 * things: `{self}` becomes `${iot:Connection.Thing.ThingName}` and iot:Connect needs the
 * certificate to be attached to that thing, so the client id must be the thing's name.
 */
export function renderIotPolicies(role: Role, opts: IotRenderOptions & { readonly maxChars?: number }): IotPolicyDocument[] {
  return renderParts([{ statements: roleStatements(role) }], opts, opts.maxChars ?? IOT_POLICY_MAX_CHARS);
}

/** A role's whole policy as one document, however large: for evaluating it, not for deploying it. */
export function renderIotPolicy(role: Role, opts: IotRenderOptions & { readonly accreditations?: readonly string[] }): IotPolicyDocument {
  return renderIotStatements(roleStatements(role, opts.accreditations ?? []), opts);
}

/**
 * The policy documents attached to an accreditation's thing group (`accredit-<label>`): for every
 * role an accreditation can extend, what it adds to that role, conditioned on the role's thing
 * type ({@link roleThingTypeName}). A client in the group gets client rights on the unlocked
 * roots, an agent agent rights, and a thing of no Porchlight type nothing. Members also hold
 * their role's base policy on their certificate.
 */
export function renderIotAccreditationPolicies(
  accreditation: string,
  opts: IotRenderOptions & { readonly namePrefix?: string; readonly maxChars?: number },
): IotPolicyDocument[] {
  const groups = accreditableRoles()
    .map((role) => ({
      statements: accreditationGrant(role, accreditation),
      condition: { StringEquals: { [THING_TYPE_VARIABLE]: roleThingTypeName(role, opts.namePrefix) } },
    }))
    .filter((g) => g.statements.length > 0);
  if (groups.length === 0) throw new InvalidIdError(`accreditation ${JSON.stringify(accreditation)} unlocks no data class; known: ${grantingAccreditations().join(', ')}`);
  return renderParts(groups, opts, opts.maxChars ?? IOT_POLICY_MAX_CHARS);
}

/**
 * The policy documents attached to a pool's thing group (`pool-<name>`): an agent member's
 * {@link poolGrant} on `tasks/`, conditioned on the agent thing type. With `accreditation`, the
 * documents of the group `accredit-<label>-pool-<name>` instead: the same rights on the roots the
 * accreditation unlocks ({@link poolAccreditationGroupName}).
 */
export function renderIotPoolPolicies(
  pool: string,
  opts: IotRenderOptions & { readonly namePrefix?: string; readonly maxChars?: number; readonly accreditation?: string },
): IotPolicyDocument[] {
  validateId('pool', pool);
  const roots = opts.accreditation === undefined ? [DEFAULT_TASK_ROOT] : rootsForAccreditation(opts.accreditation);
  if (roots.length === 0) throw new InvalidIdError(`accreditation ${JSON.stringify(opts.accreditation)} unlocks no data class; known: ${grantingAccreditations().join(', ')}`);
  const statements = roots.flatMap((root) => poolRootStatements(pool, root));
  const condition = { StringEquals: { [THING_TYPE_VARIABLE]: roleThingTypeName('agent', opts.namePrefix) } };
  return renderParts([{ statements, condition }], opts, opts.maxChars ?? IOT_POLICY_MAX_CHARS);
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
  /** Pools the identity is a member of (agents only). @default [] */
  readonly pools?: readonly string[];
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
    const pools = (identity.pools ?? []).map((p) => validateId('pool', p));
    if (pools.length > 0 && identity.role !== 'agent') throw new InvalidIdError(`identity ${JSON.stringify(id)} is a ${identity.role}; only agents can be pool members`);
    const patterned = aclLines(agentSelf, id);
    const about = [
      ...(accreditations.length > 0 ? [`accredited ${accreditations.join(', ')}`] : []),
      ...(pools.length > 0 ? [`in pool ${pools.join(', ')}`] : []),
    ];
    lines.push('', `# ${id}: ${[identity.role, ...about].join(', ')}`, `user ${id}`);
    if (identity.role !== 'agent') {
      for (const topic of patterned.keys()) lines.push(`topic deny ${topic}`);
    }
    const statements = [...roleStatements(identity.role, accreditations), ...pools.flatMap((p) => poolGrant(identity.role, p, accreditations))];
    for (const [topic, access] of aclLines(statements, id)) {
      if (identity.role === 'agent' && patterned.get(topic) === access) continue;
      lines.push(`topic ${access} ${topic}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
