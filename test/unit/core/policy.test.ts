import {
  ROLES,
  IOT_POLICY_MAX_CHARS,
  THING_NAME_VARIABLE,
  accreditationGroupName,
  accreditationGrant,
  grantingAccreditations,
  iotPolicySize,
  renderIotAccreditationPolicy,
  renderIotPolicy,
  renderMosquittoAcl,
  roleStatements,
  splitIotPolicy,
  taskRootsFor,
  type IotPolicyDocument,
} from '../../../core/policy';
import { DATA_CLASSES } from '../../../core/data-classes';
import { InvalidIdError } from '../../../core/errors';

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

/** Evaluates documents the way IoT Core does: default deny, explicit deny wins; `thing` fills the thing-name variable. */
function allows(docs: IotPolicyDocument[], action: string, resource: string, thing: string): boolean {
  let allowed = false;
  for (const doc of docs) {
    for (const st of doc.Statement) {
      if (!st.Action.includes(action)) continue;
      const hit = st.Resource.some((r) => globMatches(r.split(THING_NAME_VARIABLE).join(thing), ARN + resource));
      if (!hit) continue;
      if (st.Effect === 'Deny') return false;
      allowed = true;
    }
  }
  return allowed;
}

/** Mosquitto topic matching of an ACL filter against a topic. */
function mqttMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
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
  if (rules.some((r) => r.kind === 'deny' && mqttMatches(r.filter, topic))) return false;
  return rules.some((r) => (r.kind === access || r.kind === 'readwrite') && mqttMatches(r.filter, topic));
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

  describe('renderIotPolicy', () => {
    describe('for an agent', () => {
      const docs = splitIotPolicy(renderIotPolicy('agent', OPTS));

      it('binds connect to the thing name, so the client id must equal it', () => {
        const doc = renderIotPolicy('agent', OPTS);
        expect(doc.Version).toBe('2012-10-17');
        expect(doc.Statement[0]).toEqual({ Effect: 'Allow', Action: ['iot:Connect'], Resource: [`${ARN}client/${THING_NAME_VARIABLE}`] });
        expect(allows(docs, 'iot:Connect', 'client/alice', 'alice')).toBe(true);
        expect(allows(docs, 'iot:Connect', 'client/bob', 'alice')).toBe(false);
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

      it('lets it join a pool through a shared subscription', () => {
        expect(allows(docs, 'iot:Subscribe', 'topicfilter/$share/gpu/tasks/+/pool/gpu', 'alice')).toBe(true);
        expect(allows(docs, 'iot:Receive', 'topic/tasks/t1/pool/gpu', 'alice')).toBe(true);
      });

      it('keeps patient data out of reach without the gdpr grant', () => {
        expect(allows(docs, 'iot:Receive', 'topic/patient-data/t1/request', 'alice')).toBe(false);
        expect(allows(docs, 'iot:Subscribe', 'topicfilter/patient-data/+/request', 'alice')).toBe(false);
        const withGrant = [...docs, renderIotAccreditationPolicy('gdpr', OPTS)];
        expect(allows(withGrant, 'iot:Receive', 'topic/patient-data/t1/request', 'alice')).toBe(true);
        expect(allows(withGrant, 'iot:Receive', 'topic/patient-data/t1/assign/alice', 'alice')).toBe(true);
        expect(allows(withGrant, 'iot:Receive', 'topic/patient-data/t1/assign/bob', 'alice')).toBe(false);
        expect(allows(withGrant, 'iot:Receive', 'topic/patient-data/t1/assign/status', 'alice')).toBe(false);
      });
    });

    it('lets a client submit and watch its own tasks only, and publish nothing agents read', () => {
      const docs = [renderIotPolicy('client', OPTS)];
      expect(allows(docs, 'iot:Publish', 'topic/clients/client-1/tasks/t1/request', 'client-1')).toBe(true);
      expect(allows(docs, 'iot:Publish', 'topic/clients/client-1/tasks/t1/cancel', 'client-1')).toBe(true);
      expect(allows(docs, 'iot:Publish', 'topic/clients/client-2/tasks/t1/request', 'client-1')).toBe(false);
      expect(allows(docs, 'iot:Publish', 'topic/clients/client-1/tasks/t1/result', 'client-1')).toBe(false);
      expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/request', 'client-1')).toBe(false);
      expect(allows(docs, 'iot:Publish', 'topic/tasks/t1/assign/request', 'client-1')).toBe(false);
      expect(allows(docs, 'iot:Receive', 'topic/clients/client-1/tasks/t1/result', 'client-1')).toBe(true);
      expect(allows(docs, 'iot:Receive', 'topic/clients/client-1/tasks/t1/output/s1', 'client-1')).toBe(true);
      expect(allows(docs, 'iot:Receive', 'topic/clients/client-2/tasks/t1/result', 'client-1')).toBe(false);
      expect(allows(docs, 'iot:Subscribe', 'topicfilter/clients/+/tasks/+/result', 'client-1')).toBe(false);
      expect(allows(docs, 'iot:Receive', 'topic/tasks/t1/request', 'client-1')).toBe(false);
      expect(allows(docs, 'iot:Receive', 'topic/tasks/t1/output/s1/a1', 'client-1')).toBe(false);
      expect(allows(docs, 'iot:Receive', 'topic/clients/client-1/errors', 'client-1')).toBe(true);
      expect(allows(docs, 'iot:Receive', 'topic/agents/a1/resume', 'client-1')).toBe(true);
      expect(allows(docs, 'iot:Receive', 'topic/agents/a1/errors', 'client-1')).toBe(false);
    });

    it('keeps every rendered document within the IoT size limit once split', () => {
      const regionWorstCase = { region: 'ap-southeast-2', account: '123456789012' };
      for (const role of ROLES) {
        const doc = renderIotPolicy(role, regionWorstCase);
        const parts = splitIotPolicy(doc);
        for (const p of parts) expect(iotPolicySize(p)).toBeLessThanOrEqual(IOT_POLICY_MAX_CHARS);
        expect(parts.flatMap((p) => p.Statement.flatMap((s) => s.Resource)).sort()).toEqual(doc.Statement.flatMap((s) => s.Resource).sort());
      }
      expect(splitIotPolicy(renderIotPolicy('orchestrator', regionWorstCase)).length).toBeGreaterThan(1);
    });

    it('refuses a region or account that would break the ARN', () => {
      expect(() => renderIotPolicy('agent', { region: 'eu/central', account: '1' })).toThrow(InvalidIdError);
      expect(() => renderIotPolicy('agent', { region: 'eu-central-1', account: '' })).toThrow(/account/);
    });

    it('refuses an accreditation policy for a label that guards no data class', () => {
      expect(() => renderIotAccreditationPolicy('ISO27001', OPTS)).toThrow(/unlocks no data class/);
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
