import { Match } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { RULES, ruleSql, FUNCTION_NAMES, functionPublications } from '../../infra/rules/catalogue';
import { TASK_ROOTS } from '../../core/data-classes';
import { THING_ATTACHED_VARIABLE, THING_NAME_VARIABLE, THING_TYPE_VARIABLE, accreditableRoles, iotTopicPattern, roleThingTypeName } from '../../core/policy';
import { IOT_AUTHORIZATION_FAILURE_METRICS } from '../../infra/constructs/alarms';
import { flatten, functionStatements, synthOnce } from './helpers';

const { app, stateful, service } = synthOnce();

/** The function logical id prefix of each function (constructs are named Fn-<name>). */
const fnPrefix = (name: string): RegExp => new RegExp(`^Fn${name}Function[0-9A-F]{8}$`);

function functionLogicalId(name: string): string {
  const ids = Object.keys(service.findResources('AWS::Lambda::Function')).filter((id) => fnPrefix(name).test(id));
  expect(ids).toHaveLength(1);
  return ids[0] as string;
}

describe('Porchlight CDK app', () => {
  describe('cdk-nag AwsSolutions', () => {
    it('finds no unacknowledged error or warning anywhere in the app', () => {
      const report = new AwsSolutionsChecks(app.app).validateScope(app.app);
      const found = report.violations.map((v) => `${v.severity} ${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`);
      expect(found).toEqual([]);
    });
  });

  describe('topic rules', () => {
    const rules = service.findResources('AWS::IoT::TopicRule');

    it.each(['clients/+/tasks/+/request', 'tasks/+/proposal/+', 'tasks/+/output/+/+', 'tasks/+/progress/+/+', 'clients/+/tasks/+/cancel', 'clients/+/patient-data/+/request', 'agents/+/resume', 'agents/+/status', 'agents/+/telemetry', '$aws/events/presence/+/+'])(
      'routes %s to its function with the shared envelope SQL',
      (filter) => {
        const def = RULES.find((r) => r.topicFilter === filter);
        if (!def) throw new Error(`no catalogue rule for ${filter}`);
        const rule = rules[Object.keys(rules).find((id) => rules[id]?.Properties.RuleName === def.name) ?? ''];
        if (!rule) throw new Error(`no topic rule ${def.name}`);
        const payload = rule.Properties.TopicRulePayload;
        expect(payload.Sql).toBe(ruleSql(def));
        expect(payload.Sql).toMatch(/^SELECT encode\(\*, 'base64'\) AS payload, topic\(\) AS topic, clientid\(\) AS clientId, timestamp\(\) AS receivedAt/);
        expect(payload.Sql.endsWith(`FROM '${filter}'`)).toBe(true);
        expect(payload.AwsIotSqlVersion).toBe('2016-03-23');
        expect(payload.Actions).toEqual([{ Lambda: { FunctionArn: { 'Fn::GetAtt': [functionLogicalId(def.target), 'Arn'] } } }]);
        expect(flatten(payload.ErrorAction.Sqs.QueueUrl)).toMatch(/RuleErrors/);
      },
    );

    it('creates exactly one rule per catalogue entry', () => {
      expect(Object.keys(rules)).toHaveLength(RULES.length);
    });

    it('lets IoT invoke each function only from its own rules', () => {
      const perms = Object.values(service.findResources('AWS::Lambda::Permission', { Properties: { Principal: 'iot.amazonaws.com' } }));
      expect(perms).toHaveLength(RULES.length);
      for (const p of perms) expect(p.Properties.SourceArn).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^Rules/), 'Arn'] });
    });
  });

  describe('functions', () => {
    it('runs every function on ARM64 with the newest Node.js runtime and 256–512 MB', () => {
      for (const name of FUNCTION_NAMES) {
        const fn = service.findResources('AWS::Lambda::Function')[functionLogicalId(name)];
        expect(fn?.Properties).toMatchObject({ Runtime: 'nodejs24.x', Architectures: ['arm64'], Handler: 'index.handler' });
        expect(fn?.Properties.MemorySize).toBeGreaterThanOrEqual(256);
        expect(fn?.Properties.MemorySize).toBeLessThanOrEqual(512);
      }
    });

    it('passes the environment every handler validates at start, source maps enabled', () => {
      for (const name of FUNCTION_NAMES) {
        const env = service.findResources('AWS::Lambda::Function')[functionLogicalId(name)]?.Properties.Environment.Variables;
        expect(env).toMatchObject({
          TABLE_NAME: 'Porchlight-stateful-table',
          POWERTOOLS_SERVICE_NAME: `porchlight-${name}`,
          POWERTOOLS_METRICS_NAMESPACE: 'Porchlight',
          LEASE_MS: '60000',
          MAX_ATTEMPTS: '3',
          PROPOSAL_WINDOW_MS: '2000',
          NODE_OPTIONS: '--enable-source-maps',
        });
        expect(flatten(env.TIMER_QUEUE_URL)).toMatch(/Timers/);
      }
    });

    it('feeds the timer from the queue and reports batch item failures', () => {
      service.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
        FunctionName: { Ref: functionLogicalId('timer') },
        FunctionResponseTypes: ['ReportBatchItemFailures'],
      });
    });

    it('retries async invocations twice, then parks them in the failure queue', () => {
      const configs = Object.values(service.findResources('AWS::Lambda::EventInvokeConfig'));
      expect(configs).toHaveLength(FUNCTION_NAMES.length - 1);
      for (const c of configs) {
        expect(c.Properties.MaximumRetryAttempts).toBe(2);
        expect(flatten(c.Properties.DestinationConfig.OnFailure.Destination)).toMatch(/FunctionFailures/);
      }
    });

    it('runs the sweeper every minute', () => {
      service.hasResourceProperties('AWS::Events::Rule', {
        ScheduleExpression: 'rate(1 minute)',
        Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [functionLogicalId('sweeper'), 'Arn'] } })],
      });
    });
  });

  describe('least privilege', () => {
    const statements = functionStatements(service);

    it('grants no wildcard action to any function', () => {
      for (const name of FUNCTION_NAMES) {
        for (const st of statements[name] ?? []) for (const a of st.Action) expect(a).not.toMatch(/\*/);
      }
    });

    const TOPIC_ARN = 'arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:topic/';
    /** The topic resources a function may use `action` on. */
    const granted = (name: string, action: string): string[] =>
      (statements[name] ?? []).filter((s) => s.Effect === 'Allow' && s.Action.includes(action)).flatMap((s) => s.Resource);

    it('grants each function iot:Publish on every topic of every kind its entry points publish, and iot:RetainPublish on the retained ones', () => {
      for (const name of FUNCTION_NAMES) {
        const publish = granted(name, 'iot:Publish');
        const retain = granted(name, 'iot:RetainPublish');
        const expected = functionPublications(name);
        expect(expected.length).toBeGreaterThan(0);
        for (const p of expected) {
          for (const f of p.filters) {
            expect([name, publish]).toEqual([name, expect.arrayContaining([TOPIC_ARN + iotTopicPattern(f)])]);
            if (p.retained) expect([name, retain]).toEqual([name, expect.arrayContaining([TOPIC_ARN + iotTopicPattern(f)])]);
          }
        }
        // nothing beyond the catalogue
        const catalogued = new Set(expected.flatMap((p) => p.filters.map((f) => TOPIC_ARN + iotTopicPattern(f))));
        for (const r of [...publish, ...retain]) expect([name, r, catalogued.has(r)]).toEqual([name, r, true]);
      }
    });

    it("lets the functions that run retention clear the owners' retained outputs in every root", () => {
      for (const name of ['timer', 'sweeper'] as const) {
        for (const root of TASK_ROOTS) {
          expect(granted(name, 'iot:Publish')).toContain(`${TOPIC_ARN}clients/*/${root}/*/output/*`);
          expect(granted(name, 'iot:RetainPublish')).toContain(`${TOPIC_ARN}clients/*/${root}/*/output/*`);
        }
      }
    });

    it('lets every function read the fencing key secret, named in its environment, and nothing else of Secrets Manager', () => {
      const secrets = Object.keys(stateful.findResources('AWS::SecretsManager::Secret'));
      expect(secrets).toHaveLength(1);
      for (const name of FUNCTION_NAMES) {
        const env = service.findResources('AWS::Lambda::Function')[functionLogicalId(name)]?.Properties.Environment.Variables;
        expect(JSON.stringify(env.FENCING_KEY_SECRET_ARN)).toContain('FencingKey');
        const reads = (statements[name] ?? []).filter((st) => st.Action.some((a) => a.startsWith('secretsmanager:')));
        expect(reads.flatMap((st) => st.Action).sort()).toEqual(['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue']);
        expect(JSON.stringify(reads.flatMap((st) => st.Resource))).toContain('FencingKey');
      }
      stateful.hasResource('AWS::SecretsManager::Secret', { DeletionPolicy: 'Retain', Properties: Match.objectLike({ GenerateSecretString: Match.objectLike({ PasswordLength: 64 }) }) });
    });

    it("never lets a function publish on the agents' hand-in topics", () => {
      for (const name of FUNCTION_NAMES) {
        for (const root of TASK_ROOTS) expect(granted(name, 'iot:Publish').some((r) => r.startsWith(`${TOPIC_ARN}${root}/*/output`) || r.startsWith(`${TOPIC_ARN}${root}/*/progress`))).toBe(false);
      }
    });

    it('lets intake publish what a redelivered request flushes and the notice to a clashing sender', () => {
      const intake = granted('intake', 'iot:Publish').map((r) => r.slice(TOPIC_ARN.length));
      expect(intake).toEqual(expect.arrayContaining(['tasks/*/status', 'patient-data/*/status', 'tasks/*/assign/*', 'agents/*/errors']));
    });

    it('lets only the registry list thing groups, and every function send to the timer queue', () => {
      for (const name of FUNCTION_NAMES) {
        const actions = (statements[name] ?? []).flatMap((s) => s.Action);
        expect(actions.includes('iot:ListThingGroupsForThing')).toBe(name === 'registry');
        expect(actions).toContain('sqs:SendMessage');
        expect(actions).toContain('dynamodb:PutItem');
      }
    });
  });

  describe('stateful resources', () => {
    it('builds the table on demand with PITR, TTL and both GSIs', () => {
      stateful.hasResourceProperties('AWS::DynamoDB::Table', {
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
        SSESpecification: { SSEEnabled: true },
        GlobalSecondaryIndexes: Match.arrayWith([Match.objectLike({ IndexName: 'bySkill' }), Match.objectLike({ IndexName: 'byDue' })]),
      });
    });

    it('encrypts every queue and refuses plain-text access to it', () => {
      const queues = { ...stateful.findResources('AWS::SQS::Queue'), ...service.findResources('AWS::SQS::Queue') };
      expect(Object.keys(queues)).toHaveLength(4);
      for (const q of Object.values(queues)) expect(q.Properties.SqsManagedSseEnabled).toBe(true);
      const policies = [...Object.values(stateful.findResources('AWS::SQS::QueuePolicy')), ...Object.values(service.findResources('AWS::SQS::QueuePolicy'))];
      expect(policies).toHaveLength(4);
      for (const p of policies) {
        expect(p.Properties.PolicyDocument.Statement).toEqual(expect.arrayContaining([expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]));
      }
    });

    it('builds the agent policy on the thing name', () => {
      const policies = Object.values(stateful.findResources('AWS::IoT::Policy')).filter((p) => /^porchlight-agent(-\d+)?$/.test(p.Properties.PolicyName));
      const resources = policies.flatMap((p) => p.Properties.PolicyDocument.Statement.flatMap((s: { Resource: unknown[] }) => s.Resource.map(flatten)));
      expect(resources).toContain(`arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:client/${THING_NAME_VARIABLE}`);
      expect(resources).toContain(`arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:topicfilter/tasks/*/assign/${THING_NAME_VARIABLE}`);
      expect(resources.some((r) => r.includes('patient-data'))).toBe(false);
    });

    it('conditions every connect grant on the certificate being attached to the thing', () => {
      const connects = Object.values(stateful.findResources('AWS::IoT::Policy'))
        .flatMap((p) => p.Properties.PolicyDocument.Statement as { Action: string[]; Condition?: unknown }[])
        .filter((s) => s.Action.includes('iot:Connect'));
      expect(connects.length).toBeGreaterThanOrEqual(4);
      for (const c of connects) expect(c.Condition).toEqual({ Bool: { [THING_ATTACHED_VARIABLE]: 'true' } });
    });

    it('creates a thing type per accreditable role and conditions every accreditation grant on one of them', () => {
      const types = Object.values(stateful.findResources('AWS::IoT::ThingType')).map((t) => t.Properties.ThingTypeName).sort();
      expect(types).toEqual(accreditableRoles().map((r) => roleThingTypeName(r)).sort());
      const grant = Object.values(stateful.findResources('AWS::IoT::Policy')).filter((p) => /^porchlight-accredit-gdpr/.test(p.Properties.PolicyName));
      const statements = grant.flatMap((p) => p.Properties.PolicyDocument.Statement as { Condition?: { StringEquals?: Record<string, string> } }[]);
      const conditioned = new Set(statements.map((s) => s.Condition?.StringEquals?.[THING_TYPE_VARIABLE]));
      expect([...conditioned].sort()).toEqual(types);
    });

    it('creates the accredit-gdpr thing group and attaches its grant policy to the group', () => {
      stateful.hasResourceProperties('AWS::IoT::ThingGroup', { ThingGroupName: 'accredit-gdpr' });
      const grant = Object.entries(stateful.findResources('AWS::IoT::Policy')).filter(([, p]) => /^porchlight-accredit-gdpr/.test(p.Properties.PolicyName));
      expect(grant.length).toBeGreaterThan(0);
      const attachments = Object.values(stateful.findResources('Custom::AWS'));
      expect(attachments).toHaveLength(grant.length);
      for (const a of attachments) {
        const create = flatten(a.Properties.Create);
        expect(create).toContain('"action":"attachPolicy"');
        expect(create).toMatch(/<PoliciesGroupgdpr[0-9A-F]{8}\.Arn>/);
      }
    });
  });

  describe('alarms and logging', () => {
    const alarms = Object.values(service.findResources('AWS::CloudWatch::Alarm'));
    const metricNames = (a: (typeof alarms)[number]): string[] =>
      (a.Properties.Metrics as { MetricStat?: { Metric: { MetricName: string } } }[] | undefined ?? []).flatMap((m) => (m.MetricStat ? [m.MetricStat.Metric.MetricName] : []));

    it('alarms on every dead-letter queue and on every function\'s errors', () => {
      expect(alarms.filter((a) => a.Properties.MetricName === 'ApproximateNumberOfMessagesVisible')).toHaveLength(3);
      expect(alarms.filter((a) => a.Properties.MetricName === 'Errors')).toHaveLength(FUNCTION_NAMES.length);
    });

    it('alarms on every topic rule\'s unhandled messages and on IoT authorization failures', () => {
      const ruleAlarms = alarms.filter((a) => metricNames(a).includes('ParseError'));
      expect(ruleAlarms).toHaveLength(RULES.length);
      const auth = alarms.filter((a) => metricNames(a).includes('PublishIn.AuthError'));
      expect(auth).toHaveLength(1);
      expect([...new Set(metricNames(auth[0]!))].sort()).toEqual([...IOT_AUTHORIZATION_FAILURE_METRICS].sort());
    });

    it('notifies one encrypted SNS topic from every alarm, on alarm and on recovery', () => {
      const topics = service.findResources('AWS::SNS::Topic');
      expect(Object.keys(topics)).toHaveLength(1);
      const [topicId, topic] = Object.entries(topics)[0]!;
      expect(topic.Properties.KmsMasterKeyId).toBeDefined();
      for (const a of alarms) {
        expect(a.Properties.AlarmActions).toEqual([{ Ref: topicId }]);
        expect(a.Properties.OKActions).toEqual([{ Ref: topicId }]);
      }
      service.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    });

    it('turns IoT Core logging on, through a role, into a log group with a retention', () => {
      service.hasResourceProperties('AWS::IoT::Logging', { DefaultLogLevel: 'ERROR', RoleArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^IotLoggingRole'), 'Arn'] } });
      service.hasResourceProperties('AWS::Logs::LogGroup', { LogGroupName: 'AWSIotLogsV2', RetentionInDays: 30 });
      for (const g of Object.values(service.findResources('AWS::Logs::LogGroup'))) expect(g.Properties.RetentionInDays).toBe(30);
    });
  });
});
