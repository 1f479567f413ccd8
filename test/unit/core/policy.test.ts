import {
  ROLES,
  IOT_POLICY_MAX_CHARS,
  SELF,
  THING_NAME_VARIABLE,
  accreditationGroupName,
  accreditableRoles,
  accreditationGrant,
  grantingAccreditations,
  iotPolicySize,
  renderIotAccreditationPolicies,
  renderIotPolicies,
  renderIotPolicy,
  renderIotPoolPolicies,
  renderMosquittoAcl,
  poolAccreditationGroupName,
  poolGrant,
  poolGroupName,
  roleStatements,
  roleThingTypeName,
  taskRootsFor,
  THING_ATTACHED_VARIABLE,
  THING_TYPE_VARIABLE,
  type IotCondition,
  type IotPolicyDocument,
  type Role,
} from '../../../core/policy';
import { DATA_CLASSES, TASK_ROOTS } from '../../../core/data-classes';
import { InvalidIdError } from '../../../core/errors';
import { topicMatches } from '../../../core/topics';

const OPTS = { region: 'eu-central-1', account: '123456789012' };
const ARN = 'arn:aws:iot:eu-central-1:123456789012:';

/** IAM-style glob as AWS IoT evaluates resources: `*` any run of characters, `?` one; `+`/`#` literal. */
function globMatches(pattern: string, value: string): boolean {
  const re = pattern
    .split(THING_NAME_VARIABLE)
    .map((part) => part.replace(/[.+^${}()|[\]\\#]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.'))
    .join('\u0000');
  return new RegExp(`^${re}$`, 's').test(value);
}

/** The connecting thing, as IoT Core resolves the thing policy variables. */
interface Thing {
  readonly name: string;
  /** @default the agent thing type */
  readonly type?: string;
  /** Whether the certificate is attached to the thing. @default true */
  readonly attached?: boolean;
}

/** Evaluates the conditions the renderer writes (StringEquals, Bool) against `thing`. */
function conditionHolds(condition: IotCondition | undefined, thing: Thing): boolean {
  if (condition === undefined) return true;
  const values: Record<string, string | undefined> = {
    [THING_TYPE_VARIABLE]: thing.type ?? roleThingTypeName('agent'),
    [THING_ATTACHED_VARIABLE]: String(thing.attached ?? true),
  };
  return Object.entries(condition).every(([op, kv]) => {
    if (op !== 'StringEquals' && op !== 'Bool') throw new Error(`condition operator ${op} is not modelled by this test`);
    return Object.entries(kv).every(([key, value]) => {
      if (!(key in values)) throw new Error(`condition key ${key} is not modelled by this test`);
      return values[key] === value;
    });
  });
}

/**
 * Evaluates documents the way IoT Core does: default deny, explicit deny wins, a statement applies
 * only when its condition holds; `thing` (a name, or name, type and attachment) fills the variables.
 */
function allows(docs: IotPolicyDocument[], action: string, resource: string, who: string | Thing): boolean {
  const thing = typeof who === 'string' ? { name: who } : who;
  let allowed = false;
  for (const doc of docs) {
    for (const st of doc.Statement) {
      if (!st.Action.includes(action) || !conditionHolds(st.Condition, thing)) continue;
      const hit = st.Resource.some((r) => globMatches(r.split(THING_NAME_VARIABLE).join(thing.name), ARN + resource));
      if (!hit) continue;
      if (st.Effect === 'Deny') return false;
      allowed = true;
    }
  }
  return allowed;
}


/** Mosquitto 2 acl_file semantics for user `user`: any matching deny wins, then any grant of the access type. */
function aclAllows(acl: string, user: string, access: 'read' | 'write', topic: string): boolean {
  const rules: { kind: string; filter: string }[] = [];
  let current: string | undefined;
  for (const line of acl.split('\n')) {
    const parts = line.trim().split(/\s+/);
    if (parts[0] === 'user') current = parts[1];
    else if (parts[0] === 'pattern') rules.push({ kind: parts[1] ?? '', filter: (parts[2] ?? '').split('%u').join(user) });
    else if (parts[0] === 'topic' && current === user) rules.push({ kind: parts[1] ?? '', filter: parts[2] ?? '' });
  }
  if (rules.some((r) => r.kind === 'deny' && topicMatches(r.filter, topic))) return false;
  return rules.some((r) => (r.kind === access || r.kind === 'readwrite') && topicMatches(r.filter, topic));
}

describe('policy', () => {
  describe('the model', () => {
    it('gives agents, clients and observers only the tasks root when they hold no accreditation', () => {
      for (const role of ['agent', 'client', 'observer'] as const) expect(taskRootsFor(role)).toEqual(['tasks']);
    });

    it('adds every sensitive root whose accreditation is held', () => {
      for (const dc of Object.values(DATA_CLASSES)) {
        expect(taskRootsFor('agent', [dc.accreditation])).toContain(dc.root);
        expect(accreditationGrant('agent', dc.accreditation).flatMap((s) => s.topics).every((t) => t.startsWith(`${dc.root}/`) || t.startsWith(`$share/+/${dc.root}/`))).toBe(true);
      }
      expect(grantingAccreditations()).toEqual(['gdpr']);
    });

    it('gives the orchestrator every root without accreditation', () => {
      expect(taskRootsFor('orchestrator')).toEqual(['tasks', 'patient-data']);
    });

    it('lets only the orchestrator publish calls for bids, assignments, pools, every status, result, republished output and progress, and errors', () => {
      const orchestratorOnly = [
        'tasks/+/request', 'tasks/+/assign/+', 'tasks/+/pool/+', 'tasks/+/status', 'clients/+/tasks/+/status', 'clients/+/tasks/+/result',
        'clients/+/tasks/+/output/+', 'clients/+/tasks/+/progress/+', 'clients/+/patient-data/+/result', 'agents/+/errors', 'clients/+/errors',
      ];
      for (const role of ROLES) {
        const published = roleStatements(role, ['gdpr']).filter((s) => s.actions.includes('publish')).flatMap((s) => s.topics);
        for (const t of orchestratorOnly) expect(published.includes(t)).toBe(role === 'orchestrator');
      }
    });

    it('gives the observer no publish right at all', () => {
      expect(roleStatements('observer', ['gdpr']).some((s) => s.actions.includes('publish'))).toBe(false);
    });

    it('rejects an accreditation label that cannot name a thing group', () => {
      expect(() => accreditationGroupName('gdpr/x')).toThrow(InvalidIdError);
      expect(() => roleStatements('agent', ['#'])).toThrow(InvalidIdError);
      expect(accreditationGroupName('gdpr')).toBe('accredit-gdpr');
    });

    it('rejects an unknown role', () => {
      expect(() => roleStatements('admin' as never)).toThrow(/unknown role "admin"/);
    });
  });

  describe('renderIotPolicies', () => {
    describe('for an agent', () => {
      const docs = renderIotPolicies('agent', OPTS);

      it('connects only as the thing the certificate is attached to', () => {
        const connect = docs.flatMap((d) => d.Statement).filter((s) => s.Action.includes('iot:Connect'));
        expect(connect).toEqual([{
          Effect: 'Allow', Action: ['iot:Connect'], Resource: [`${ARN}client/${THING_NAME_VARIABLE}`],
          Condition: { Bool: { [THING_ATTACHED_VARIABLE]: 'true' } },
        }]);
        expect(allows(docs, 'iot:Connect', 'client/alice', 'alice')).toBe(true);
        expect(allows(docs, 'iot:Connect', 'client/bob', 'alice')).toBe(false);
        expect(allows(docs, 'iot:Connect', 'client/alice', { name: 'alice', attached: false })).toBe(false);
      });

      it('grants its own assignments and denies everybody else\'s', () => {
        expect(allows(docs, 'iot:Subscribe', 'topicfilter/tasks/+/assign/alice', 'alice')).toBe(true);
        expect(allows(docs, 'iot:Receive', 'topic/tasks/t1/assign/alice', 'alice')).toBe(true);
        expect(allows(docs, 'iot:Receive', 'topic/tasks/t1/assign/bob', 'alice')).toBe(false);
        expect(allows(docs, 'iot:Subscribe', 'topicfilter/tasks/+/assign/+', 'alice')).toBe(false);
        expect(allows(docs, 'iot:Subscribe', 'topicfilter/tasks/#', 'alice')).toBe(false);
      });

      it('denies another agent\'s assignment even when its id collides with a topic word', () => {
        // `tasks/*/status` alone would match tasks/t1/assign/status
        expect(allows(docs, 'iot:Receive', 'topic/tasks/t1/status', 'alice')).toBe(true);
        expect(allows(docs, 'iot:Receive', 'topic/tasks/t1/assign/status', 'alice')).toBe(false);
        expect(allows(docs, 'iot:Subscribe', 'topicfilter/tasks/+/assign/status', 'alice')).toBe(false);
        expect(allows(docs, 'iot:Receive', 'topic/tasks/t1/proposal/request', 'alice')).toBe(false);
      });

      it('lets it publish only its own résumé, status, telemetry and proposals, retained where the wire contract says', () => {
        expect(allows(docs, 'iot:Publish', 'topic/agents/alice/resume', 'alice')).toBe(true);
        expect(allows(docs, 'iot:RetainPublish', 'topic/agents/alice/resume', 'alice')).toBe(true);
        expect(allows(docs, 'iot:Publish', 'topic/agents/bob/resume', 'alice')).toBe(false);
        expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/proposal/alice', 'alice')).toBe(true);
        expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/proposal/bob', 'alice')).toBe(false);
        // Outputs and progress are handed in under its own name only, never retained.
        expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/output/s1/alice', 'alice')).toBe(true);
        expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/progress/s1/alice', 'alice')).toBe(true);
        expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/output/s1/bob', 'alice')).toBe(false);
        expect(allows(docs, 'iot:RetainPublish', 'topic/tasks/t1/output/s1/alice', 'alice')).toBe(false);
        expect(allows(docs, 'iot:RetainPublish', 'topic/agents/alice/telemetry', 'alice')).toBe(false);
        // Nothing a client reads: no republished output, status or result, and no submission.
        expect(allows(docs, 'iot:Publish', 'topic/clients/c1/tasks/t1/output/s1', 'alice')).toBe(false);
        expect(allows(docs, 'iot:RetainPublish', 'topic/clients/c1/tasks/t1/output/s1', 'alice')).toBe(false);
        expect(allows(docs, 'iot:Publish', 'topic/clients/c1/tasks/t1/result', 'alice')).toBe(false);
        expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/request', 'alice')).toBe(false);
        expect(allows(docs, 'iot:Receive', 'topic/clients/c1/tasks/t1/result', 'alice')).toBe(false);
        expect(allows(docs, 'iot:Receive', 'topic/clients/c1/tasks/t1/request', 'alice')).toBe(false);
        expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/assign/alice', 'alice')).toBe(false);
        expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/status', 'alice')).toBe(false);
      });

      it('reads no pool and claims nothing without a pool group', () => {
        expect(allows(docs, 'iot:Subscribe', 'topicfilter/$share/gpu/tasks/+/pool/gpu', 'alice')).toBe(false);
        expect(allows(docs, 'iot:Subscribe', 'topicfilter/tasks/+/pool/gpu', 'alice')).toBe(false);
        expect(allows(docs, 'iot:Receive', 'topic/tasks/t1/pool/gpu', 'alice')).toBe(false);
        expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/claim/s1/alice', 'alice')).toBe(false);
      });

      it('keeps patient data out of reach without the gdpr grant', () => {
        expect(allows(docs, 'iot:Receive', 'topic/patient-data/t1/request', 'alice')).toBe(false);
        expect(allows(docs, 'iot:Subscribe', 'topicfilter/patient-data/+/request', 'alice')).toBe(false);
        const withGrant = [...docs, ...renderIotAccreditationPolicies('gdpr', OPTS)];
        expect(allows(withGrant, 'iot:Receive', 'topic/patient-data/t1/request', 'alice')).toBe(true);
        expect(allows(withGrant, 'iot:Receive', 'topic/patient-data/t1/assign/alice', 'alice')).toBe(true);
        expect(allows(withGrant, 'iot:Receive', 'topic/patient-data/t1/assign/bob', 'alice')).toBe(false);
        expect(allows(withGrant, 'iot:Receive', 'topic/patient-data/t1/assign/status', 'alice')).toBe(false);
      });
    });

    it('lets a client submit and watch its own tasks only, and publish nothing agents read', () => {
      const docs = renderIotPolicies('client', OPTS);
      const client = { name: 'client-1', type: roleThingTypeName('client') };
      expect(allows(docs, 'iot:Publish', 'topic/clients/client-1/tasks/t1/request', client)).toBe(true);
      expect(allows(docs, 'iot:Publish', 'topic/clients/client-1/tasks/t1/cancel', client)).toBe(true);
      expect(allows(docs, 'iot:Publish', 'topic/clients/client-2/tasks/t1/request', client)).toBe(false);
      expect(allows(docs, 'iot:Publish', 'topic/clients/client-1/tasks/t1/result', client)).toBe(false);
      expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/request', client)).toBe(false);
      expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/assign/request', client)).toBe(false);
      expect(allows(docs, 'iot:Receive', 'topic/clients/client-1/tasks/t1/result', client)).toBe(true);
      expect(allows(docs, 'iot:Receive', 'topic/clients/client-1/tasks/t1/output/s1', client)).toBe(true);
      expect(allows(docs, 'iot:Receive', 'topic/clients/client-2/tasks/t1/result', client)).toBe(false);
      expect(allows(docs, 'iot:Subscribe', 'topicfilter/clients/+/tasks/+/result', client)).toBe(false);
      expect(allows(docs, 'iot:Receive', 'topic/tasks/t1/request', client)).toBe(false);
      expect(allows(docs, 'iot:Receive', 'topic/tasks/t1/output/s1/a1', client)).toBe(false);
      expect(allows(docs, 'iot:Receive', 'topic/clients/client-1/errors', client)).toBe(true);
      expect(allows(docs, 'iot:Receive', 'topic/agents/a1/resume', client)).toBe(true);
      expect(allows(docs, 'iot:Receive', 'topic/agents/a1/errors', client)).toBe(false);
    });

    describe('splitting into parts', () => {
      // A tight limit forces many parts, so each guard lands in a part of its own grants or not at all.
      const tight = { ...OPTS, maxChars: 700 };
      // Topics whose last level collides with a three-level grant's word: what the guards are for.
      const probes = TASK_ROOTS.flatMap((root) => ['request', 'status', 'result', 'cancel'].flatMap((word) => ['assign', 'proposal', 'pool', 'output', 'progress'].flatMap((kind) => [
        { action: 'iot:Publish', resource: `topic/${root}/t1/${kind}/${word}` },
        { action: 'iot:RetainPublish', resource: `topic/${root}/t1/${kind}/${word}` },
        { action: 'iot:Receive', resource: `topic/${root}/t1/${kind}/${word}` },
        { action: 'iot:Subscribe', resource: `topicfilter/${root}/+/${kind}/${word}` },
      ])));

      /** Whether the role's model statements grant `action` on the probe's topic, in MQTT terms (`+` one level). */
      const meant = (role: Role, action: string, resource: string, self: string): boolean => {
        const modelAction = ({ 'iot:Publish': 'publish', 'iot:RetainPublish': 'publish', 'iot:Receive': 'receive', 'iot:Subscribe': 'subscribe' } as const)[action as 'iot:Publish'];
        const topic = resource.replace(/^topic(filter)?\//, '');
        return roleStatements(role).some((st) => st.effect === 'allow' && st.actions.includes(modelAction)
          && st.topics.some((t) => topicMatches(t.split(SELF).join(self), topic)));
      };

      it.each([...ROLES])('keeps every %s part safe on its own: alone, its wildcards allow nothing beyond what the model means', (role) => {
        const parts = renderIotPolicies(role, tight);
        expect(parts.length).toBeGreaterThan(1);
        let overreach = 0;
        for (const part of parts) {
          expect(iotPolicySize(part)).toBeLessThanOrEqual(tight.maxChars);
          // Without its guards a part would allow these through `*` spanning levels.
          const stripped = { ...part, Statement: part.Statement.filter((st) => st.Effect === 'Allow') };
          for (const probe of probes) {
            if (meant(role, probe.action, probe.resource, 'alice')) continue;
            if (allows([stripped], probe.action, probe.resource, 'alice')) overreach += 1;
            expect([probe, allows([part], probe.action, probe.resource, 'alice')]).toEqual([probe, false]);
          }
        }
        // The probes do hit grants whose guards matter, so the check above is not vacuous. Clients and
        // observers hold no three-level grant on the agent tree at all: nothing there to overreach.
        if (role === 'agent' || role === 'orchestrator') expect(overreach).toBeGreaterThan(0);
        else expect(overreach).toBe(0);
      });

      it('puts in each part the denies guarding the three-level grants it holds', () => {
        for (const role of ROLES) {
          for (const part of renderIotPolicies(role, tight)) {
            const statements = part.Statement;
            for (const st of statements.filter((s) => s.Effect === 'Allow')) {
              for (const r of st.Resource) {
                const m = /:topic(?:filter)?\/([a-z-]+)\/\*\/([a-z]+)$/.exec(r);
                if (!m || !TASK_ROOTS.includes(m[1] ?? '')) continue;
                const guard = `${ARN}topic*/${m[1]}/*/*/${m[2]}`;
                const denied = statements.filter((s) => s.Effect === 'Deny' && s.Resource.includes(guard)).flatMap((s) => s.Action);
                for (const a of st.Action) expect(denied).toContain(a);
              }
            }
          }
        }
      });

      it('renders, across the parts, exactly the grants of the whole policy', () => {
        for (const role of ROLES) {
          const whole = renderIotPolicy(role, OPTS);
          const parts = renderIotPolicies(role, tight);
          const allowed = (docs: IotPolicyDocument[]): string[] =>
            [...new Set(docs.flatMap((d) => d.Statement.filter((s) => s.Effect === 'Allow').flatMap((s) => s.Action.flatMap((a) => s.Resource.map((r) => `${a} ${r}`)))))].sort();
          expect(allowed(parts)).toEqual(allowed([whole]));
        }
      });

      it('refuses a limit too small for a single grant with its guards', () => {
        expect(() => renderIotPolicies('agent', { ...OPTS, maxChars: 200 })).toThrow(/alone exceeds 200 characters/);
      });
    });

    it('lets the orchestrator publish every kind core publishes, retained outputs included', () => {
      const docs = renderIotPolicies('orchestrator', OPTS);
      for (const topic of ['clients/c1/tasks/t1/output/s1', 'clients/c1/patient-data/t1/output/s1', 'tasks/t1/status', 'clients/c1/patient-data/t1/result']) {
        expect(allows(docs, 'iot:RetainPublish', `topic/${topic}`, 'porchlight-orchestrator')).toBe(true);
      }
      expect(allows(docs, 'iot:Publish', 'topic/agents/a1/errors', 'porchlight-orchestrator')).toBe(true);
      expect(allows(docs, 'iot:RetainPublish', 'topic/tasks/t1/assign/a1', 'porchlight-orchestrator')).toBe(false);
    });

    it('keeps every deployable document within the IoT size limit', () => {
      const regionWorstCase = { region: 'ap-southeast-2', account: '123456789012' };
      for (const role of ROLES) for (const p of renderIotPolicies(role, regionWorstCase)) expect(iotPolicySize(p)).toBeLessThanOrEqual(IOT_POLICY_MAX_CHARS);
      for (const p of renderIotAccreditationPolicies('gdpr', regionWorstCase)) expect(iotPolicySize(p)).toBeLessThanOrEqual(IOT_POLICY_MAX_CHARS);
      expect(renderIotPolicies('orchestrator', regionWorstCase).length).toBeGreaterThan(1);
    });

    it('refuses a region or account that would break the ARN', () => {
      expect(() => renderIotPolicies('agent', { region: 'eu/central', account: '1' })).toThrow(InvalidIdError);
      expect(() => renderIotPolicies('agent', { region: 'eu-central-1', account: '' })).toThrow(/account/);
    });
  });

  describe('level guards (`*` spans levels)', () => {
    // Each document is checked for the thing it applies to (an accreditation grant once per role).
    // Tight limits force many parts, so each guard must land in the part of its own grant.
    const tight = { ...OPTS, maxChars: 700 };
    const tightConditioned = { ...OPTS, maxChars: 1000 };
    const WORDS = ['request', 'status', 'result', 'cancel', 'proposal', 'assign', 'pool', 'claim', 'output', 'progress'];

    /** Model statements behind each kind of deployable document, with the thing it is evaluated for. */
    const documents: { name: string; parts: IotPolicyDocument[]; statements: ReturnType<typeof roleStatements>; thing: Thing }[] = [
      ...ROLES.map((role) => ({ name: `${role} policy`, parts: renderIotPolicies(role, tight), statements: roleStatements(role), thing: { name: 'alice', type: roleThingTypeName(role === 'orchestrator' ? 'agent' : role) } })),
      ...accreditableRoles().map((role) => ({
        name: `gdpr grant for a ${role}`, parts: renderIotAccreditationPolicies('gdpr', tightConditioned), statements: accreditationGrant(role, 'gdpr'), thing: { name: 'alice', type: roleThingTypeName(role) },
      })),
      { name: 'pool gpu', parts: renderIotPoolPolicies('gpu', tightConditioned), statements: poolGrant('agent', 'gpu').filter((st) => st.topics.every((t) => !t.includes('patient-data'))), thing: { name: 'alice' } },
      { name: 'gdpr pool gpu', parts: renderIotPoolPolicies('gpu', { ...tightConditioned, accreditation: 'gdpr' }), statements: poolGrant('agent', 'gpu', ['gdpr']).filter((st) => st.topics.some((t) => t.includes('patient-data'))), thing: { name: 'alice' } },
    ];

    const MODEL_ACTION = { 'iot:Publish': 'publish', 'iot:RetainPublish': 'publish', 'iot:Receive': 'receive', 'iot:Subscribe': 'subscribe' } as const;
    /** Whether the statements grant `action` on `resource` in MQTT terms (`+` one level, `#` the rest). */
    const meant = (statements: ReturnType<typeof roleStatements>, action: string, resource: string, self: string): boolean => {
      const modelAction = MODEL_ACTION[action as keyof typeof MODEL_ACTION];
      const topic = resource.replace(/^topic(filter)?\//, '');
      return statements.some((st) => st.effect === 'allow' && st.actions.includes(modelAction)
        && st.topics.some((t) => {
          const pattern = t.split(SELF).join(self);
          // A `$share/<group>/` filter is granted as written: its group is a literal level.
          return pattern.startsWith('$share/') && !topic.startsWith('$share/') ? false : topicMatches(pattern, topic);
        }));
    };

    /**
     * Topics (or filters) each granted resource reaches through a `*` that spans levels: one `*`
     * spanning two levels, every other `*` one level. Ids are topic words where that is what
     * would collide, plain ids otherwise.
     */
    const deeper = (resource: string, fill: string): string[] => {
      const segs = resource.split('/');
      const stars = segs.flatMap((seg, i) => (seg === '*' ? [i] : []));
      return stars.flatMap((k) => WORDS.slice(0, 3).map((w) => segs.map((seg, i) => (i === k ? `${w}/${fill}` : seg === '*' ? fill : seg)).join('/')));
    };

    it.each(documents.map((d) => [d.name, d] as const))('makes every grant of the %s match exactly its MQTT levels, in every part on its own', (_name, doc) => {
      let probed = 0;
      for (const part of doc.parts) {
        for (const st of part.Statement.filter((s) => s.Effect === 'Allow' && !s.Action.includes('iot:Connect') && conditionHolds(s.Condition, doc.thing))) {
          for (const arn of st.Resource) {
            const resource = arn.slice(ARN.length).split(THING_NAME_VARIABLE).join(doc.thing.name);
            for (const action of st.Action) {
              // The grant's own depth stays allowed…
              const atDepth = resource.replace(/\*/g, 't1');
              expect([action, atDepth, allows([part], action, atDepth, doc.thing)]).toEqual([action, atDepth, true]);
              // …and nothing deeper is, unless the model grants that topic too (`#`).
              for (const fill of ['t1', ...WORDS]) {
                for (const deep of deeper(resource, fill)) {
                  if (meant(doc.statements, action, deep, doc.thing.name)) continue;
                  probed += 1;
                  expect([action, deep, allows([part], action, deep, doc.thing)]).toEqual([action, deep, false]);
                }
              }
            }
          }
        }
      }
      expect(probed).toBeGreaterThan(0);
    });

    it('denies an observer the outputs and progress of steps named `status` or `result`, and patient data through the client-id `*`', () => {
      const docs = renderIotPolicies('observer', OPTS);
      const observer = { name: 'observer-1', type: roleThingTypeName('observer') };
      expect(allows(docs, 'iot:Receive', 'topic/clients/c1/tasks/t1/status', observer)).toBe(true);
      expect(allows(docs, 'iot:Receive', 'topic/clients/c1/tasks/t1/result', observer)).toBe(true);
      expect(allows(docs, 'iot:Receive', 'topic/clients/c1/tasks/t1/output/status', observer)).toBe(false);
      expect(allows(docs, 'iot:Receive', 'topic/clients/c1/tasks/t1/progress/result', observer)).toBe(false);
      expect(allows(docs, 'iot:Subscribe', 'topicfilter/clients/+/tasks/+/output/status', observer)).toBe(false);
      // The first `*` reaching into another root: task `tasks` of patient-data, step `status`.
      expect(allows(docs, 'iot:Receive', 'topic/clients/c1/patient-data/tasks/output/status', observer)).toBe(false);
      const gdpr = [...docs, ...renderIotAccreditationPolicies('gdpr', OPTS)];
      expect(allows(gdpr, 'iot:Receive', 'topic/clients/c1/patient-data/t1/result', observer)).toBe(true);
      expect(allows(gdpr, 'iot:Receive', 'topic/clients/c1/patient-data/t1/output/result', observer)).toBe(false);
    });

    it("keeps a pool member to its pool's offers: no hand-in or claim of a step named `pool` by an agent named like the pool", () => {
      const member = { name: 'alice', type: roleThingTypeName('agent') };
      const docs = [...renderIotPolicies('agent', OPTS), ...renderIotPoolPolicies('gpu', OPTS)];
      expect(allows(docs, 'iot:Receive', 'topic/tasks/t1/pool/gpu', member)).toBe(true);
      expect(allows(docs, 'iot:Subscribe', 'topicfilter/$share/gpu/tasks/+/pool/gpu', member)).toBe(true);
      for (const kind of ['output', 'progress', 'claim']) {
        expect(allows(docs, 'iot:Receive', `topic/tasks/t1/${kind}/pool/gpu`, member)).toBe(false);
        expect(allows(docs, 'iot:Subscribe', `topicfilter/tasks/+/${kind}/pool/gpu`, member)).toBe(false);
        expect(allows(docs, 'iot:Subscribe', `topicfilter/$share/gpu/tasks/+/${kind}/pool/gpu`, member)).toBe(false);
      }
      expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/claim/s2/alice', member)).toBe(true);
      expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/x/claim/s2/alice', member)).toBe(false);
    });

    it('keeps bids and hand-ins from reaching claims: an agent in no pool cannot claim a step named `proposal`', () => {
      const docs = renderIotPolicies('agent', OPTS);
      expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/proposal/alice', 'alice')).toBe(true);
      expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/claim/proposal/alice', 'alice')).toBe(false);
      expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/output/s1/alice', 'alice')).toBe(true);
      expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/x/output/s1/alice', 'alice')).toBe(false);
    });

    it('keeps the orchestrator from forging hand-ins through its assignment and offer grants', () => {
      const docs = renderIotPolicies('orchestrator', OPTS);
      const o = 'porchlight-orchestrator';
      expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/assign/a1', o)).toBe(true);
      expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/pool/gpu', o)).toBe(true);
      expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/output/assign/a1', o)).toBe(false);
      expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/progress/pool/a1', o)).toBe(false);
      expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/claim/pool/a1', o)).toBe(false);
    });

    it('grants each topic once per condition across the parts, so its guards are not repeated', () => {
      for (const role of ROLES) {
        const seen = new Map<string, number>();
        for (const part of renderIotPolicies(role, tight)) {
          for (const st of part.Statement.filter((s) => s.Effect === 'Allow')) {
            for (const r of st.Resource) seen.set(r, (seen.get(r) ?? 0) + 1);
          }
        }
        expect([role, [...seen].filter(([, n]) => n > 1)]).toEqual([role, []]);
      }
    });
  });

  describe('renderIotAccreditationPolicies', () => {
    const grant = renderIotAccreditationPolicies('gdpr', OPTS);
    const as = (role: Role, name: string): Thing => ({ name, type: roleThingTypeName(role) });
    const withBase = (role: Role): IotPolicyDocument[] => [...renderIotPolicies(role, OPTS), ...grant];

    it('conditions every statement on a role\'s thing type', () => {
      const types = accreditableRoles().map((r) => roleThingTypeName(r));
      for (const st of grant.flatMap((d) => d.Statement)) {
        expect(types).toContain(st.Condition?.StringEquals?.[THING_TYPE_VARIABLE]);
      }
      expect(accreditableRoles()).toEqual(['agent', 'client', 'observer']);
    });

    it('gives an accredited client client rights on patient data and never agent rights', () => {
      const docs = withBase('client');
      const client = as('client', 'client-1');
      expect(allows(docs, 'iot:Publish', 'topic/clients/client-1/patient-data/t1/request', client)).toBe(true);
      expect(allows(docs, 'iot:Publish', 'topic/clients/client-1/patient-data/t1/cancel', client)).toBe(true);
      expect(allows(docs, 'iot:Receive', 'topic/clients/client-1/patient-data/t1/result', client)).toBe(true);
      expect(allows(docs, 'iot:Subscribe', 'topicfilter/clients/client-1/patient-data/t1/result', client)).toBe(true);
      expect(allows(docs, 'iot:Receive', 'topic/clients/client-2/patient-data/t1/result', client)).toBe(false);
      expect(allows(docs, 'iot:Publish', 'topic/patient-data/t1/request', client)).toBe(false);
      expect(allows(docs, 'iot:Receive', 'topic/patient-data/t1/request', client)).toBe(false);
      expect(allows(docs, 'iot:Receive', 'topic/patient-data/t1/pool/gpu', client)).toBe(false);
      expect(allows(docs, 'iot:Publish', 'topic/patient-data/t1/output/s1/client-1', client)).toBe(false);
      expect(allows(docs, 'iot:Publish', 'topic/patient-data/t1/proposal/client-1', client)).toBe(false);
    });

    it('gives an accredited agent agent rights on patient data and never client rights', () => {
      const docs = withBase('agent');
      const agent = as('agent', 'alice');
      expect(allows(docs, 'iot:Receive', 'topic/patient-data/t1/request', agent)).toBe(true);
      // Pools are membership: the accreditation alone reads no pool.
      expect(allows(docs, 'iot:Receive', 'topic/patient-data/t1/pool/gpu', agent)).toBe(false);
      expect(allows(docs, 'iot:Publish', 'topic/patient-data/t1/output/s1/alice', agent)).toBe(true);
      expect(allows(docs, 'iot:RetainPublish', 'topic/patient-data/t1/output/s1/alice', agent)).toBe(false);
      expect(allows(docs, 'iot:Publish', 'topic/patient-data/t1/request', agent)).toBe(false);
      expect(allows(docs, 'iot:Publish', 'topic/clients/alice/patient-data/t1/request', agent)).toBe(false);
      expect(allows(docs, 'iot:Receive', 'topic/clients/c1/patient-data/t1/result', agent)).toBe(false);
    });

    it('gives an accredited observer read-only status and results', () => {
      const docs = withBase('observer');
      const observer = as('observer', 'web');
      expect(allows(docs, 'iot:Receive', 'topic/clients/c1/patient-data/t1/result', observer)).toBe(true);
      expect(allows(docs, 'iot:Receive', 'topic/clients/c1/patient-data/t1/request', observer)).toBe(false);
      expect(allows(docs, 'iot:Receive', 'topic/patient-data/t1/request', observer)).toBe(false);
      expect(allows(docs, 'iot:Publish', 'topic/clients/web/patient-data/t1/request', observer)).toBe(false);
    });

    it('grants a thing of no Porchlight type nothing', () => {
      const stranger = { name: 'x', type: 'something-else' };
      for (const probe of ['topic/patient-data/t1/request', 'topic/clients/x/patient-data/t1/request', 'topic/clients/x/patient-data/t1/result']) {
        for (const action of ['iot:Publish', 'iot:Receive']) expect(allows(grant, action, probe, stranger)).toBe(false);
      }
    });

    it('follows the name prefix of the deployment', () => {
      const prefixed = renderIotAccreditationPolicies('gdpr', { ...OPTS, namePrefix: 'acme' });
      expect(JSON.stringify(prefixed)).toContain('"acme-client"');
      expect(JSON.stringify(prefixed)).not.toContain('"porchlight-');
    });

    it('refuses a label that guards no data class', () => {
      expect(() => renderIotAccreditationPolicies('ISO27001', OPTS)).toThrow(/unlocks no data class/);
    });
  });

  describe('poolGrant and the pool groups', () => {
    const agent = (name: string): Thing => ({ name, type: roleThingTypeName('agent') });
    const base = renderIotPolicies('agent', OPTS);
    const pool = renderIotPoolPolicies('gpu', OPTS);
    const poolGdpr = renderIotPoolPolicies('gpu', { ...OPTS, accreditation: 'gdpr' });
    const gdpr = renderIotAccreditationPolicies('gdpr', OPTS);

    it('names one thing group per pool, and one per pool and accreditation', () => {
      expect(poolGroupName('gpu')).toBe('pool-gpu');
      expect(poolAccreditationGroupName('gpu', 'gdpr')).toBe('accredit-gdpr-pool-gpu');
      expect(() => poolGroupName('a/b')).toThrow(InvalidIdError);
    });

    it('gives a member agent read of its pool (plain and shared) and claims under its own name, under tasks/ only', () => {
      const docs = [...base, ...pool];
      expect(allows(docs, 'iot:Subscribe', 'topicfilter/$share/gpu/tasks/+/pool/gpu', agent('alice'))).toBe(true);
      expect(allows(docs, 'iot:Subscribe', 'topicfilter/tasks/+/pool/gpu', agent('alice'))).toBe(true);
      expect(allows(docs, 'iot:Receive', 'topic/tasks/t1/pool/gpu', agent('alice'))).toBe(true);
      expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/claim/s1/alice', agent('alice'))).toBe(true);
      expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/claim/s1/bob', agent('alice'))).toBe(false);
      // another pool's offers, and patient data, stay out of reach
      expect(allows(docs, 'iot:Receive', 'topic/tasks/t1/pool/cpu', agent('alice'))).toBe(false);
      expect(allows(docs, 'iot:Receive', 'topic/patient-data/t1/pool/gpu', agent('alice'))).toBe(false);
      expect(allows([...docs, ...gdpr], 'iot:Receive', 'topic/patient-data/t1/pool/gpu', agent('alice'))).toBe(false);
    });

    it('lets only a member holding the accreditation read the pool under the roots it unlocks', () => {
      const docs = [...base, ...pool, ...gdpr, ...poolGdpr];
      expect(allows(docs, 'iot:Receive', 'topic/patient-data/t1/pool/gpu', agent('alice'))).toBe(true);
      expect(allows(docs, 'iot:Publish', 'topic/patient-data/t1/claim/s1/alice', agent('alice'))).toBe(true);
      expect(() => renderIotPoolPolicies('gpu', { ...OPTS, accreditation: 'ISO27001' })).toThrow(/unlocks no data class/);
    });

    it('grants a client or observer in a pool group nothing', () => {
      for (const role of ['client', 'observer'] as const) {
        const docs = [...renderIotPolicies(role, OPTS), ...pool, ...poolGdpr];
        const who = { name: 'c1', type: roleThingTypeName(role) };
        expect(allows(docs, 'iot:Receive', 'topic/tasks/t1/pool/gpu', who)).toBe(false);
        expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/claim/s1/c1', who)).toBe(false);
      }
      expect(poolGrant('client', 'gpu')).toEqual([]);
    });

    it('fits every pool policy within the IoT limit', () => {
      for (const doc of [...pool, ...poolGdpr]) expect(iotPolicySize(doc)).toBeLessThanOrEqual(IOT_POLICY_MAX_CHARS);
    });

    it('covers tasks/ and every root the agent\'s accreditations unlock', () => {
      const topicsOf = (acc: string[]): string[] => poolGrant('agent', 'gpu', acc).flatMap((s) => s.topics);
      expect(topicsOf([])).toEqual(['tasks/+/pool/gpu', '$share/gpu/tasks/+/pool/gpu', `tasks/+/claim/+/${SELF}`]);
      expect(topicsOf(['gdpr'])).toContain('patient-data/+/pool/gpu');
    });
  });

  describe('renderMosquittoAcl with pools', () => {
    const acl = renderMosquittoAcl({
      identities: [
        { id: 'member', role: 'agent', accreditations: [], pools: ['gpu'] },
        { id: 'gdpr-member', role: 'agent', accreditations: ['gdpr'], pools: ['gpu'] },
        { id: 'outsider', role: 'agent', accreditations: ['gdpr'] },
        { id: 'client-1', role: 'client', accreditations: [] },
        { id: 'porchlight-orchestrator', role: 'orchestrator', accreditations: [] },
      ],
    });

    it('lets only members read a pool topic', () => {
      expect(aclAllows(acl, 'member', 'read', 'tasks/t1/pool/gpu')).toBe(true);
      expect(aclAllows(acl, 'outsider', 'read', 'tasks/t1/pool/gpu')).toBe(false);
      expect(aclAllows(acl, 'client-1', 'read', 'tasks/t1/pool/gpu')).toBe(false);
      expect(aclAllows(acl, 'member', 'read', 'tasks/t1/pool/cpu')).toBe(false);
      // an identity nobody listed holds only the %u patterns
      expect(aclAllows(acl, 'stranger', 'read', 'tasks/t1/pool/gpu')).toBe(false);
    });

    it('lets only members that may see the data class read its pool offers', () => {
      expect(aclAllows(acl, 'gdpr-member', 'read', 'patient-data/t1/pool/gpu')).toBe(true);
      expect(aclAllows(acl, 'member', 'read', 'patient-data/t1/pool/gpu')).toBe(false);
      expect(aclAllows(acl, 'outsider', 'read', 'patient-data/t1/pool/gpu')).toBe(false);
    });

    it('lets members claim only under their own name, and the orchestrator read claims', () => {
      expect(aclAllows(acl, 'member', 'write', 'tasks/t1/claim/s1/member')).toBe(true);
      expect(aclAllows(acl, 'member', 'write', 'tasks/t1/claim/s1/outsider')).toBe(false);
      expect(aclAllows(acl, 'outsider', 'write', 'tasks/t1/claim/s1/outsider')).toBe(false);
      expect(aclAllows(acl, 'porchlight-orchestrator', 'read', 'tasks/t1/claim/s1/member')).toBe(true);
      expect(aclAllows(acl, 'porchlight-orchestrator', 'write', 'tasks/t1/pool/gpu')).toBe(true);
    });

    it('refuses pools on identities that are not agents, and invalid pool names', () => {
      expect(() => renderMosquittoAcl({ identities: [{ id: 'client-2', role: 'client', accreditations: [], pools: ['gpu'] }] })).toThrow(/only agents/);
      expect(() => renderMosquittoAcl({ identities: [{ id: 'a', role: 'agent', accreditations: [], pools: ['gpu/#'] }] })).toThrow(InvalidIdError);
    });
  });

  describe('renderMosquittoAcl', () => {
    const acl = renderMosquittoAcl({
      identities: [
        { id: 'alice', role: 'agent', accreditations: [] },
        { id: 'bob', role: 'agent', accreditations: ['gdpr', 'ISO27001'] },
        { id: 'porchlight-orchestrator', role: 'orchestrator', accreditations: [] },
        { id: 'client-1', role: 'client', accreditations: [] },
        { id: 'web', role: 'observer', accreditations: [] },
      ],
    });

    it('scopes the agent namespace with %u patterns', () => {
      expect(acl).toContain('pattern write agents/%u/resume');
      expect(acl).toContain('pattern read tasks/+/assign/%u');
      expect(acl).toContain('pattern write tasks/+/proposal/%u');
    });

    it('grants an agent its own assignments and nobody else\'s', () => {
      expect(aclAllows(acl, 'alice', 'read', 'tasks/t1/assign/alice')).toBe(true);
      expect(aclAllows(acl, 'alice', 'read', 'tasks/t1/assign/bob')).toBe(false);
      expect(aclAllows(acl, 'alice', 'read', 'tasks/t1/request')).toBe(true);
      expect(aclAllows(acl, 'alice', 'write', 'tasks/t1/status')).toBe(false);
      expect(aclAllows(acl, 'alice', 'write', 'agents/bob/resume')).toBe(false);
    });

    it('needs the gdpr grant for patient data', () => {
      expect(aclAllows(acl, 'alice', 'read', 'patient-data/t1/request')).toBe(false);
      expect(aclAllows(acl, 'bob', 'read', 'patient-data/t1/request')).toBe(true);
      expect(aclAllows(acl, 'bob', 'read', 'patient-data/t1/assign/bob')).toBe(true);
      expect(aclAllows(acl, 'bob', 'read', 'patient-data/t1/assign/alice')).toBe(false);
      expect(aclAllows(acl, 'client-1', 'write', 'clients/client-1/patient-data/t1/request')).toBe(false);
      expect(aclAllows(acl, 'client-1', 'read', 'clients/client-1/patient-data/t1/result')).toBe(false);
    });

    it('keeps clients and observers out of the agent namespace and the observer read-only', () => {
      expect(aclAllows(acl, 'client-1', 'write', 'agents/client-1/resume')).toBe(false);
      expect(aclAllows(acl, 'client-1', 'write', 'clients/client-1/tasks/t1/request')).toBe(true);
      expect(aclAllows(acl, 'client-1', 'write', 'clients/alice/tasks/t1/request')).toBe(false);
      expect(aclAllows(acl, 'client-1', 'write', 'tasks/t1/request')).toBe(false);
      expect(aclAllows(acl, 'client-1', 'read', 'tasks/t1/request')).toBe(false);
      expect(aclAllows(acl, 'client-1', 'read', 'clients/client-1/tasks/t1/status')).toBe(true);
      expect(aclAllows(acl, 'client-1', 'read', 'clients/other/tasks/t1/status')).toBe(false);
      expect(aclAllows(acl, 'client-1', 'write', 'tasks/t1/output/s1/client-1')).toBe(false);
      expect(aclAllows(acl, 'web', 'read', 'clients/client-1/tasks/t1/status')).toBe(true);
      expect(aclAllows(acl, 'web', 'read', 'agents/a1/status')).toBe(true);
      expect(aclAllows(acl, 'web', 'write', 'agents/web/resume')).toBe(false);
      expect(aclAllows(acl, 'web', 'write', 'tasks/t1/status')).toBe(false);
    });

    it('lets only the orchestrator publish assignments and status, in every root', () => {
      expect(aclAllows(acl, 'porchlight-orchestrator', 'write', 'tasks/t1/assign/alice')).toBe(true);
      expect(aclAllows(acl, 'porchlight-orchestrator', 'write', 'patient-data/t1/status')).toBe(true);
      expect(aclAllows(acl, 'porchlight-orchestrator', 'read', 'tasks/t1/output/s1/alice')).toBe(true);
      expect(aclAllows(acl, 'porchlight-orchestrator', 'write', 'clients/client-1/tasks/t1/output/s1')).toBe(true);
      // clearing retained outputs after retention, from the publication catalogue
      expect(aclAllows(acl, 'porchlight-orchestrator', 'write', 'clients/client-1/patient-data/t1/output/s1')).toBe(true);
      expect(aclAllows(acl, 'client-1', 'write', 'tasks/t1/assign/alice')).toBe(false);
      // Agents hand in under their own name and cannot write what clients read.
      expect(aclAllows(acl, 'alice', 'write', 'tasks/t1/output/s1/alice')).toBe(true);
      expect(aclAllows(acl, 'alice', 'write', 'tasks/t1/output/s1/bob')).toBe(false);
      expect(aclAllows(acl, 'alice', 'write', 'clients/client-1/tasks/t1/output/s1')).toBe(false);
      expect(aclAllows(acl, 'alice', 'read', 'clients/client-1/tasks/t1/result')).toBe(false);
      expect(aclAllows(acl, 'alice', 'write', 'tasks/t1/request')).toBe(false);
    });

    it('validates ids before splicing them', () => {
      expect(() => renderMosquittoAcl({ identities: [{ id: 'evil/#', role: 'agent', accreditations: [] }] })).toThrow(InvalidIdError);
      expect(() => renderMosquittoAcl({ identities: [{ id: 'a b', role: 'client', accreditations: [] }] })).toThrow(InvalidIdError);
      expect(() => renderMosquittoAcl({ identities: [{ id: 'ok', role: 'agent', accreditations: ['x\nuser root'] }] })).toThrow(InvalidIdError);
    });

    it('refuses an identity listed twice', () => {
      expect(() => renderMosquittoAcl({ identities: [{ id: 'a', role: 'agent', accreditations: [] }, { id: 'a', role: 'client', accreditations: [] }] })).toThrow(/listed twice/);
    });
  });
});
