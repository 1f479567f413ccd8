/**
 * Pools on AWS: one thing group per pool whose policy lets agent members read the pool's offers
 * and claim them, and a group per pool and accreditation for the sensitive roots.
 */
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { buildPorchlight, poolsSetting } from '../../infra/app';
import { THING_TYPE_VARIABLE, roleThingTypeName } from '../../core/policy';
import { flatten } from './helpers';

describe('pool thing groups', () => {
  const app = new App({ context: { pools: 'render,gpu' }, postCliContext: { '@aws-cdk/core:defaultCrossStackReferences': 'strong' } });
  const { stateful } = buildPorchlight(app, 'PoolTest');
  const template = Template.fromStack(stateful);
  const policies = template.findResources('AWS::IoT::Policy');
  const policyNamed = (re: RegExp) => Object.entries(policies).filter(([, p]) => re.test(String(p.Properties.PolicyName)));

  it('reads the pools setting from a comma-separated string or a list', () => {
    expect(poolsSetting('render, gpu,,render')).toEqual(['render', 'gpu']);
    expect(poolsSetting(['a'])).toEqual(['a']);
    expect(poolsSetting(undefined)).toEqual([]);
    expect(() => poolsSetting(3)).toThrow(/context pools/);
  });

  it('creates pool-<name> and accredit-<label>-pool-<name> for each pool', () => {
    for (const name of ['pool-render', 'pool-gpu', 'accredit-gdpr-pool-render', 'accredit-gdpr-pool-gpu']) {
      template.hasResourceProperties('AWS::IoT::ThingGroup', { ThingGroupName: name });
    }
  });

  it('grants agent members read of the pool topic and claims under their own name, on tasks/ only', () => {
    const grant = policyNamed(/^porchlight-pool-render(-\d+)?$/);
    expect(grant.length).toBeGreaterThan(0);
    const text = flatten(grant.map(([, p]) => p.Properties.PolicyDocument));
    expect(text).toContain('topic/tasks/*/pool/render');
    expect(text).toContain('topicfilter/$share/render/tasks/*/pool/render');
    expect(text).toContain('topic/tasks/*/claim/*/${iot:Connection.Thing.ThingName}');
    expect(text).not.toContain('patient-data');
    expect(text).not.toContain('pool/gpu');
    for (const [, p] of grant) {
      for (const st of p.Properties.PolicyDocument.Statement as { Condition?: { StringEquals?: Record<string, string> } }[]) {
        expect(st.Condition?.StringEquals?.[THING_TYPE_VARIABLE]).toBe(roleThingTypeName('agent'));
      }
    }
  });

  it('grants the sensitive roots only through the pool-and-accreditation group', () => {
    const text = flatten(policyNamed(/^porchlight-accredit-gdpr-pool-render(-\d+)?$/).map(([, p]) => p.Properties.PolicyDocument));
    expect(text).toContain('topic/patient-data/*/pool/render');
    expect(text).not.toContain('topic/tasks/');
  });

  it('attaches each pool policy to its group', () => {
    const attachments = Object.values(template.findResources('Custom::AWS')).map((a) => flatten(a.Properties.Create));
    const poolGrants = policyNamed(/pool-/);
    expect(attachments.filter((c) => /Pool/.test(c))).toHaveLength(poolGrants.length);
    expect(attachments.some((c) => c.includes('"action":"attachPolicy"') && /<PoliciesPoolrenderGroup[0-9A-F]{8}\.Arn>/.test(c))).toBe(true);
  });
});
