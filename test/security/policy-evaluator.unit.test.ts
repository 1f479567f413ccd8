import { actionMatches, evaluatePolicies, resourceMatches, substituteVariables, UnsupportedPolicyError, type NamedPolicy } from './policy-evaluator';
import { authorizeDataPlanePublish, authorizeMqtt, connectionThing, iotArn, PROBE_SCOPE, type IotConnection } from './iot-authorizer';
import { judge, mqttMatches } from './verdicts';
import type { KnownOpen, ProbeRow } from './probe-matrix';

const arn = (resource: string): string => iotArn(PROBE_SCOPE, resource);
const THING = '${iot:Connection.Thing.ThingName}';

function policy(name: string, ...Statement: NamedPolicy['document']['Statement'][]): NamedPolicy {
  return { name, document: { Version: '2012-10-17', Statement: Statement.flat() } };
}

describe('policy evaluator', () => {
  describe('wildcards', () => {
    it('lets `*` span any characters, `/` included, and match nothing', () => {
      expect(resourceMatches('topic/tasks/*/status', 'topic/tasks/t1/status')).toBe(true);
      expect(resourceMatches('topic/tasks/*/status', 'topic/tasks/t1/assign/status')).toBe(true);
      expect(resourceMatches('topic/tasks/*/status', 'topic/tasks//status')).toBe(true);
      expect(resourceMatches('topic/tasks/*/status', 'topic/tasks/t1/statuses')).toBe(false);
    });

    it('lets `?` match exactly one character', () => {
      expect(resourceMatches('topic/t?', 'topic/t1')).toBe(true);
      expect(resourceMatches('topic/t?', 'topic/t')).toBe(false);
      expect(resourceMatches('topic/t?', 'topic/t12')).toBe(false);
    });

    it('treats MQTT wildcards and regular-expression characters literally', () => {
      expect(resourceMatches('topicfilter/tasks/+/request', 'topicfilter/tasks/+/request')).toBe(true);
      expect(resourceMatches('topicfilter/tasks/+/request', 'topicfilter/tasks/t1/request')).toBe(false);
      expect(resourceMatches('topic/a.b', 'topic/aXb')).toBe(false);
      expect(resourceMatches('topicfilter/agents/#', 'topicfilter/agents/#')).toBe(true);
    });

    it('matches resources case-sensitively and actions case-insensitively', () => {
      expect(resourceMatches('topic/Tasks', 'topic/tasks')).toBe(false);
      expect(actionMatches('iot:publish', 'iot:Publish')).toBe(true);
      expect(actionMatches('iot:*', 'iot:RetainPublish')).toBe(true);
      expect(actionMatches('iot:Publish', 'iot:RetainPublish')).toBe(false);
    });
  });

  describe('policy variables', () => {
    it('substitutes a variable before matching', () => {
      expect(resourceMatches(`client/${THING}`, 'client/agent-a', { 'iot:Connection.Thing.ThingName': 'agent-a' })).toBe(true);
      expect(resourceMatches(`client/${THING}`, 'client/agent-b', { 'iot:Connection.Thing.ThingName': 'agent-a' })).toBe(false);
    });

    it('fails closed when a variable cannot be resolved, even against `*`-like values', () => {
      expect(substituteVariables(`client/${THING}`, {})).toBeUndefined();
      expect(resourceMatches(`client/${THING}`, 'client/', {})).toBe(false);
      expect(resourceMatches(`client/${THING}`, 'client/${iot:Connection.Thing.ThingName}', {})).toBe(false);
    });

    it('keeps `*` inside a substituted value or an escape literal', () => {
      expect(resourceMatches('topic/${iot:ClientId}', 'topic/anything', { 'iot:ClientId': '*' })).toBe(false);
      expect(resourceMatches('topic/${iot:ClientId}', 'topic/*', { 'iot:ClientId': '*' })).toBe(true);
      expect(resourceMatches('topic/a${*}', 'topic/a*')).toBe(true);
      expect(resourceMatches('topic/a${*}', 'topic/ab')).toBe(false);
    });
  });

  describe('decisions', () => {
    const allow = policy('allow', { Effect: 'Allow', Action: ['iot:Subscribe', 'iot:Receive'], Resource: [arn('topic*/tasks/*')] });
    const deny = policy('deny', { Effect: 'Deny', Action: 'iot:Receive', Resource: arn('topic/tasks/*/*/status') });

    it('denies implicitly when nothing matches', () => {
      expect(evaluatePolicies([allow], { action: 'iot:Publish', resource: arn('topic/tasks/t1/status') })).toMatchObject({ decision: 'deny', reason: 'implicit-deny' });
    });

    it('allows when an Allow matches and no Deny does', () => {
      expect(evaluatePolicies([allow, deny], { action: 'iot:Receive', resource: arn('topic/tasks/t1/status') })).toMatchObject({ decision: 'allow', matched: ['allow#0'] });
    });

    it('lets an explicit Deny in any attached policy win', () => {
      expect(evaluatePolicies([allow, deny], { action: 'iot:Receive', resource: arn('topic/tasks/t1/assign/status') })).toMatchObject({ decision: 'deny', reason: 'explicit-deny', matched: ['deny#0'] });
      expect(evaluatePolicies([allow], { action: 'iot:Receive', resource: arn('topic/tasks/t1/assign/status') }).decision).toBe('allow');
    });

    it('applies Bool and String conditions, failing a condition on a missing key', () => {
      const conditioned = policy('c', {
        Effect: 'Allow', Action: 'iot:Connect', Resource: '*',
        Condition: { Bool: { 'iot:Connection.Thing.IsAttached': 'true' }, StringLike: { 'iot:ClientId': 'agent-*' } },
      });
      const request = { action: 'iot:Connect', resource: arn('client/agent-a') };
      expect(evaluatePolicies([conditioned], { ...request, context: { 'iot:Connection.Thing.IsAttached': 'true', 'iot:ClientId': 'agent-a' } }).decision).toBe('allow');
      expect(evaluatePolicies([conditioned], { ...request, context: { 'iot:Connection.Thing.IsAttached': 'false', 'iot:ClientId': 'agent-a' } }).decision).toBe('deny');
      expect(evaluatePolicies([conditioned], { ...request, context: { 'iot:Connection.Thing.IsAttached': 'true', 'iot:ClientId': 'client-1' } }).decision).toBe('deny');
      expect(evaluatePolicies([conditioned], { ...request, context: { 'iot:ClientId': 'agent-a' } }).decision).toBe('deny');
      const ifExists = policy('e', { Effect: 'Allow', Action: 'iot:Connect', Resource: '*', Condition: { StringEqualsIfExists: { 'iot:ClientId': 'x' } } });
      expect(evaluatePolicies([ifExists], request).decision).toBe('allow');
    });

    it('refuses what it does not implement instead of guessing', () => {
      const notAction = { name: 'n', document: { Statement: [{ Effect: 'Allow', NotAction: 'iot:Publish', Resource: '*' }] } } as unknown as NamedPolicy;
      expect(() => evaluatePolicies([notAction], { action: 'iot:Publish', resource: 'x' })).toThrow(UnsupportedPolicyError);
      const operator = policy('o', { Effect: 'Allow', Action: '*', Resource: '*', Condition: { DateGreaterThan: { 'aws:CurrentTime': '2020-01-01' } } });
      expect(() => evaluatePolicies([operator], { action: 'iot:Publish', resource: 'x', context: { 'aws:CurrentTime': 'now' } })).toThrow(UnsupportedPolicyError);
    });
  });
});

describe('IoT Core authorisation of MQTT operations', () => {
  const agentPolicy = policy('agent', [
    { Effect: 'Allow', Action: 'iot:Connect', Resource: arn(`client/${THING}`) },
    { Effect: 'Allow', Action: 'iot:Publish', Resource: [arn(`topic/agents/${THING}/telemetry`), arn('topic/tasks/*/output/*')] },
    { Effect: 'Allow', Action: 'iot:RetainPublish', Resource: arn('topic/tasks/*/output/*') },
    { Effect: 'Allow', Action: 'iot:Subscribe', Resource: arn(`topicfilter/tasks/*/assign/${THING}`) },
    { Effect: 'Allow', Action: 'iot:Receive', Resource: arn(`topic/tasks/*/assign/${THING}`) },
  ]);
  const conn = (over: Partial<IotConnection> = {}): IotConnection => ({ clientId: 'agent-a', certificateThings: ['agent-a'], policies: [agentPolicy], ...over });

  it('resolves the thing from the client id, or from an exclusive association', () => {
    expect(connectionThing({ clientId: 'agent-a', certificateThings: ['agent-a'] })).toBe('agent-a');
    expect(connectionThing({ clientId: 'agent-b', certificateThings: ['agent-a'] })).toBeUndefined();
    expect(connectionThing({ clientId: 'agent-b', certificateThings: ['agent-a'], association: 'exclusive' })).toBe('agent-a');
    expect(connectionThing({ clientId: 'agent-a', certificateThings: [] })).toBeUndefined();
  });

  it('connects only with the client id of the certificate’s thing', () => {
    expect(authorizeMqtt(conn(), { kind: 'connect' }).decision).toBe('allow');
    expect(authorizeMqtt(conn({ clientId: 'agent-b' }), { kind: 'connect' }).decision).toBe('deny');
    expect(authorizeMqtt(conn({ clientId: 'agent-b', association: 'exclusive' }), { kind: 'connect' }).decision).toBe('deny');
    expect(authorizeMqtt(conn({ certificateThings: [] }), { kind: 'connect' }).decision).toBe('deny');
  });

  it('needs iot:RetainPublish as well for a retained publish', () => {
    expect(authorizeMqtt(conn(), { kind: 'publish', topic: 'agents/agent-a/telemetry', retain: false }).decision).toBe('allow');
    expect(authorizeMqtt(conn(), { kind: 'publish', topic: 'agents/agent-a/telemetry', retain: true }).decision).toBe('deny');
    expect(authorizeMqtt(conn(), { kind: 'publish', topic: 'tasks/t1/output/s1', retain: true }).decision).toBe('allow');
  });

  it('needs the subscription and iot:Receive on the topic to receive', () => {
    expect(authorizeMqtt(conn(), { kind: 'receive', topic: 'tasks/t1/assign/agent-a', filter: 'tasks/+/assign/agent-a' }).decision).toBe('allow');
    expect(authorizeMqtt(conn(), { kind: 'receive', topic: 'tasks/t1/assign/agent-b', filter: 'tasks/+/assign/agent-b' }).decision).toBe('deny');
    expect(authorizeMqtt(conn(), { kind: 'receive', topic: 'tasks/t1/assign/agent-a', filter: 'tasks/#' }).decision).toBe('deny');
  });

  it('denies everything on a connection that may not connect', () => {
    expect(authorizeMqtt(conn({ clientId: 'agent-b' }), { kind: 'publish', topic: 'tasks/t1/output/s1', retain: false }).decision).toBe('deny');
  });

  it("conditions on the thing type of the connection's own thing, failing without one", () => {
    const grant = policy('accredit', {
      Effect: 'Allow',
      Action: 'iot:Publish',
      Resource: arn(`topic/clients/${THING}/patient-data/*/request`),
      Condition: { StringEquals: { 'iot:Connection.Thing.ThingTypeName': 'porchlight-client' } },
    });
    const submit = { kind: 'publish', topic: 'clients/client-g/patient-data/t9/request', retain: false } as const;
    const client = (over: Partial<IotConnection>): IotConnection => ({ clientId: 'client-g', certificateThings: ['client-g'], policies: [agentPolicy, grant], ...over });
    expect(authorizeMqtt(client({ thingTypes: { 'client-g': 'porchlight-client' } }), submit).decision).toBe('allow');
    expect(authorizeMqtt(client({ thingTypes: { 'client-g': 'porchlight-agent' } }), submit).decision).toBe('deny');
    expect(authorizeMqtt(client({}), submit).decision).toBe('deny');
    expect(authorizeMqtt(client({ thingTypes: { 'client-x': 'porchlight-client' } }), submit).decision).toBe('deny');
  });

  it('authorises data-plane publishes by IAM iot:Publish and iot:RetainPublish', () => {
    const role = [policy('fn', { Effect: 'Allow', Action: ['iot:Publish', 'iot:RetainPublish'], Resource: arn('topic/tasks/*/status') }, { Effect: 'Allow', Action: 'iot:Publish', Resource: arn('topic/tasks/*/assign/*') })];
    expect(authorizeDataPlanePublish(role, 'tasks/t1/status', true).decision).toBe('allow');
    expect(authorizeDataPlanePublish(role, 'tasks/t1/assign/agent-a', false).decision).toBe('allow');
    expect(authorizeDataPlanePublish(role, 'tasks/t1/assign/agent-a', true).decision).toBe('deny');
    expect(authorizeDataPlanePublish(role, 'tasks/t1/output/s1', true).decision).toBe('deny');
  });
});

describe('verdict judging', () => {
  const row: ProbeRow = { identity: 'agent-a', action: 'receive', target: 'tasks/t2/pool/cpu', expect: 'deny', why: 'test' };
  const open: KnownOpen[] = [{ name: 'pools', on: ['mosquitto'], rows: ['agent-a receive tasks/t2/pool/cpu'], why: 'test' }];

  it('accepts the expected verdict and reports any other', () => {
    expect(judge(row, 'iot', { verdict: 'deny', detail: '' }, [])).toBeNull();
    expect(judge(row, 'iot', { verdict: 'allow', detail: 'granted by x' }, [])).toMatch(/expected deny on iot .* got allow: granted by x/);
  });

  it('requires a known-open row to still be open on the brokers listed, and only there', () => {
    expect(judge(row, 'mosquitto', { verdict: 'allow', detail: '' }, open)).toBeNull();
    expect(judge(row, 'mosquitto', { verdict: 'deny', detail: '' }, open)).toMatch(/known-open entry "pools" is fixed here/);
    expect(judge(row, 'iot', { verdict: 'allow', detail: '' }, open)).toMatch(/expected deny/);
  });

  it('matches MQTT filters, shared ones included', () => {
    expect(mqttMatches('tasks/+/pool/+', 'tasks/t1/pool/gpu')).toBe(true);
    expect(mqttMatches('$share/g/tasks/+/pool/+', 'tasks/t1/pool/gpu')).toBe(true);
    expect(mqttMatches('agents/#', 'agents/a/status')).toBe(true);
    expect(mqttMatches('tasks/+/request', 'tasks/t1/assign/request')).toBe(false);
    expect(mqttMatches('tasks/t1', 'tasks/t1/x')).toBe(false);
  });
});
