/**
 * The AWS side of the probe matrix, read from what CDK synthesizes for `infra/` (not from the
 * renderers): the IoT policies of each role (every part), the thing types identities are created
 * with, the policies attached to each thing group by the deploy-time custom resources, and the
 * IAM policies of each function's role.
 */
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { DEFAULT_IOT_NAME_PREFIX, roleThingTypeName, type Role } from '../../core/policy';
import { buildPorchlight } from '../../infra/app';
import type { NamedPolicy, PolicyDocumentJson } from './policy-evaluator';
import { PROBE_SCOPE, type ArnScope } from './iot-authorizer';
import { PROBE_POOLS } from './probe-matrix';

/** Everything of a deployment that decides an MQTT or data-plane authorisation. */
export interface IotDeployment {
  /** IoT policies by name (`porchlight-agent`, `porchlight-agent-2`, …), ARNs resolved. */
  readonly iotPolicies: Readonly<Record<string, PolicyDocumentJson>>;
  /** The thing types the app defines, by name (`porchlight-agent`, …). */
  readonly thingTypes: ReadonlySet<string>;
  /** Policy names attached to each thing group (`accredit-gdpr` → [`porchlight-accredit-gdpr`]). */
  readonly groupAttachments: Readonly<Record<string, readonly string[]>>;
  /** IAM policies of each orchestrator function's role, by function name (`intake`, …). */
  readonly functionPolicies: Readonly<Record<string, readonly NamedPolicy[]>>;
  /** The synthesized stateful stack (IoT policies, thing groups). */
  readonly stateful: Template;
}

type Json = unknown;

/** Resolves the intrinsics CDK emits in these stacks to plain strings in `scope`. */
function resolver(templates: readonly Template[], scope: ArnScope): (value: Json) => Json {
  const resources: Record<string, { Type: string; Properties?: Record<string, Json> }> = {};
  for (const t of templates) Object.assign(resources, t.toJSON().Resources as typeof resources);
  const pseudo: Record<string, string> = { 'AWS::Partition': scope.partition, 'AWS::Region': scope.region, 'AWS::AccountId': scope.account, 'AWS::URLSuffix': 'amazonaws.com' };
  const resolve = (value: Json): Json => {
    if (Array.isArray(value)) return value.map(resolve);
    if (value === null || typeof value !== 'object') return value;
    const o = value as Record<string, Json>;
    if ('Fn::Join' in o) {
      const [sep, parts] = o['Fn::Join'] as [string, Json[]];
      return parts.map((p) => String(resolve(p))).join(sep);
    }
    if ('Ref' in o) {
      const name = o.Ref as string;
      if (pseudo[name] !== undefined) return pseudo[name];
      return `<Ref ${name}>`;
    }
    if ('Fn::GetAtt' in o) {
      const [logicalId, attr] = o['Fn::GetAtt'] as [string, string];
      const res = resources[logicalId];
      if (res?.Type === 'AWS::IoT::ThingGroup' && attr === 'Arn') {
        return `arn:${scope.partition}:iot:${scope.region}:${scope.account}:thinggroup/${String(res.Properties?.ThingGroupName)}`;
      }
      if (res?.Type === 'AWS::IoT::Policy' && attr === 'Arn') {
        return `arn:${scope.partition}:iot:${scope.region}:${scope.account}:policy/${String(res.Properties?.PolicyName)}`;
      }
      return `<GetAtt ${logicalId}.${attr}>`;
    }
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, resolve(v)]));
  };
  return resolve;
}

/**
 * Synthesizes the app (asset bundling skipped: function code does not decide any permission) and
 * reads its authorisation-relevant parts. Takes a few seconds.
 */
export function loadIotDeployment(scope: ArnScope = PROBE_SCOPE): IotDeployment {
  // Same context as infra/app.ts's createApp, minus bundling (the slow part) and cdk-nag (tested in
  // test/infra), plus the matrix's pools (`-c pools=…`), so their thing groups exist.
  const app = new App({
    context: { 'aws:cdk:bundling-stacks': [], pools: PROBE_POOLS.join(',') },
    postCliContext: { '@aws-cdk/core:defaultCrossStackReferences': 'strong' },
  });
  const stacks = buildPorchlight(app);
  const stateful = Template.fromStack(stacks.stateful);
  const service = Template.fromStack(stacks.service);
  const resolve = resolver([stateful, service], scope);

  const iotPolicies: Record<string, PolicyDocumentJson> = {};
  for (const res of Object.values(stateful.findResources('AWS::IoT::Policy'))) {
    iotPolicies[res.Properties.PolicyName as string] = resolve(res.Properties.PolicyDocument) as PolicyDocumentJson;
  }

  const thingTypes = new Set(Object.values(stateful.findResources('AWS::IoT::ThingType')).map((res) => String(res.Properties.ThingTypeName)));

  const groupAttachments: Record<string, string[]> = {};
  for (const [logicalId, res] of Object.entries(stateful.findResources('Custom::AWS'))) {
    const call = JSON.parse(String(resolve(res.Properties.Create))) as { service: string; action: string; parameters: { policyName: string; target: string } };
    if (call.service !== 'Iot' || call.action !== 'attachPolicy') continue;
    const group = /:thinggroup\/(.+)$/.exec(call.parameters.target)?.[1];
    if (group === undefined) throw new Error(`${logicalId} attaches ${call.parameters.policyName} to ${call.parameters.target}, which is not a thing group`);
    (groupAttachments[group] ??= []).push(call.parameters.policyName);
  }

  const functionPolicies: Record<string, NamedPolicy[]> = {};
  for (const [logicalId, res] of Object.entries(service.findResources('AWS::IAM::Policy'))) {
    const fn = /^Fn(\w+?)Function/.exec(logicalId)?.[1];
    if (fn === undefined) continue;
    (functionPolicies[fn] ??= []).push({ name: logicalId, document: resolve(res.Properties.PolicyDocument) as PolicyDocumentJson });
  }
  return { iotPolicies, thingTypes, groupAttachments, functionPolicies, stateful };
}

/**
 * The parts of a role's IoT policy in attachment order: `porchlight-<role>`, `-2`, `-3`, …
 * Throws when the role has none.
 */
export function rolePolicyParts(deployment: IotDeployment, role: string, prefix = 'porchlight'): NamedPolicy[] {
  const pattern = new RegExp(`^${prefix}-${role}(?:-(\\d+))?$`);
  const parts = Object.keys(deployment.iotPolicies)
    .map((name) => ({ name, index: pattern.exec(name) }))
    .filter((p): p is { name: string; index: RegExpExecArray } => p.index !== null)
    .sort((a, b) => Number(a.index[1] ?? 1) - Number(b.index[1] ?? 1))
    .map((p) => ({ name: p.name, document: deployment.iotPolicies[p.name] as PolicyDocumentJson }));
  if (parts.length === 0) throw new Error(`no IoT policy for role ${role} in the synthesized app`);
  return parts;
}

/** The policies a thing inherits from a thing group (empty when the group has none or does not exist). */
export function groupPolicies(deployment: IotDeployment, group: string): NamedPolicy[] {
  return (deployment.groupAttachments[group] ?? []).map((name) => {
    const document = deployment.iotPolicies[name];
    if (document === undefined) throw new Error(`thing group ${group} has policy ${name} attached, which the app does not define`);
    return { name: `${name} (via ${group})`, document };
  });
}

/**
 * The thing type an identity of `role` is created with: its role's type when the app defines one
 * (`porchlight-<role>`), none otherwise (the orchestrator's thing has no type).
 */
export function roleThingType(deployment: IotDeployment, role: Role, prefix = DEFAULT_IOT_NAME_PREFIX): string | undefined {
  const name = roleThingTypeName(role, prefix);
  return deployment.thingTypes.has(name) ? name : undefined;
}
