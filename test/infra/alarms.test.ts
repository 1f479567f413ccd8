import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Alarms } from '../../infra/constructs/alarms';

function build(props: { email?: string; authorizationFailureThreshold?: number } = {}): Template {
  const stack = new Stack(new App(), 'AlarmsTest');
  const queue = new sqs.Queue(stack, 'Dlq');
  const fn = new lambda.Function(stack, 'Fn', { runtime: lambda.Runtime.NODEJS_24_X, handler: 'index.handler', code: lambda.Code.fromInline('exports.handler = async () => 1;') });
  new Alarms(stack, 'Alarms', { deadLetterQueues: { q: queue }, functions: { f: fn }, ...props });
  return Template.fromStack(stack);
}

describe('Alarms', () => {
  it('subscribes the given address to the alarm topic by e-mail', () => {
    const t = build({ email: 'ops@example.com' });
    t.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@example.com' });
  });

  it('creates the topic without a subscription when no address is given', () => {
    const t = build();
    t.resourceCountIs('AWS::SNS::Topic', 1);
    t.resourceCountIs('AWS::SNS::Subscription', 0);
  });

  it('lets CloudWatch use the topic key, only for this account', () => {
    const t = build();
    const key = Object.values(t.findResources('AWS::KMS::Key'))[0];
    const statements = key?.Properties.KeyPolicy.Statement as { Principal?: { Service?: string }; Action: string[]; Condition?: unknown }[];
    const cw = statements.find((s) => s.Principal?.Service === 'cloudwatch.amazonaws.com');
    expect(cw?.Action).toEqual(['kms:Decrypt', 'kms:GenerateDataKey*']);
    expect(cw?.Condition).toEqual({ StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } });
  });

  it('uses the authorization threshold it is given', () => {
    const t = build({ authorizationFailureThreshold: 5 });
    const auth = Object.values(t.findResources('AWS::CloudWatch::Alarm')).filter((a) => JSON.stringify(a.Properties.Metrics ?? []).includes('PublishIn.AuthError'));
    expect(auth.map((a) => a.Properties.Threshold)).toEqual([5]);
  });

  it('refuses a malformed address and a threshold below one', () => {
    expect(() => build({ email: 'not an address' })).toThrow(/is not an e-mail address/);
    expect(() => build({ authorizationFailureThreshold: 0 })).toThrow(/positive integer/);
  });
});
