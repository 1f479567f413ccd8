import { Aws, Names } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import {
  DEFAULT_IOT_NAME_PREFIX,
  ROLES,
  accreditableRoles,
  accreditationGroupName,
  grantingAccreditations,
  poolAccreditationGroupName,
  poolGroupName,
  renderIotAccreditationPolicies,
  renderIotPolicies,
  renderIotPoolPolicies,
  roleThingTypeName,
  validateAccreditation,
  type IotPolicyDocument,
  type Role,
} from '../../core/policy';
import { validateId } from '../../core/topics';
import { acknowledge, LAMBDA_BASIC_EXECUTION_FINDING } from './acknowledge';

/** ARN parts at least as long as any real ones (`aws-us-gov`, `ap-southeast-2`, 12 digits), used only to size documents. */
const SIZING_ARN = { partition: 'aws-us-gov', region: 'xx-xxxxxxxxxxx-9', account: '999999999999' } as const;

/** Props of {@link AgentPolicies}. */
export interface AgentPoliciesProps {
  /**
   * Prefix of every IoT policy and thing type name (`<prefix>-agent`, `<prefix>-accredit-gdpr`, …).
   * @default 'porchlight'
   */
  readonly namePrefix?: string;
  /**
   * Accreditations that get a thing group (`accredit-<label>`) with the grant policy attached.
   * @default every accreditation that guards a data class (core/data-classes.ts)
   */
  readonly accreditations?: readonly string[];
  /**
   * Pools that get a thing group (`pool-<name>`) whose policy lets agent members read the pool's
   * offers and claim them under `tasks/`, and for each accreditation a group
   * `accredit-<label>-pool-<name>` with the same rights under the roots it unlocks.
   * @default none
   */
  readonly pools?: readonly string[];
}

/**
 * The IoT side of the policy model (core/policy.ts): one IoT policy per role, to be attached to
 * each identity's certificate when it is registered; one thing type per role that an
 * accreditation can extend (`<prefix>-agent`, `<prefix>-client`, …), which each identity's thing
 * is created with; and one thing group per accreditation whose policy adds the sensitive topic
 * roots to its members — for each role only that role's rights, conditioned on the thing type,
 * so a client in `accredit-gdpr` gets client rights on `patient-data/` and never agent rights.
 *
 * Pools are membership: one thing group per pool (`pool-<name>`) grants its agent members the
 * pool's offers and claims under `tasks/`. IoT policies cannot test group membership, so the
 * pool's rights under a sensitive root (a member that also holds the accreditation) are a group
 * of their own, `accredit-<label>-pool-<name>`; put a thing there only when it is in both.
 *
 * CloudFormation cannot attach a policy to a thing group (`AWS::IoT::PolicyPrincipalAttachment`
 * takes certificate ARNs and Cognito ids only, aws/aws-cdk#26166), so the attachment is an
 * `AwsCustomResource` calling IoT `AttachPolicy` with the group ARN as target, and
 * `DetachPolicy` on delete.
 *
 * A document larger than IoT's 2048-character limit is split into `<name>`, `<name>-2`, …; every
 * part carries the denies guarding its own grants, so attaching only some parts narrows rights
 * and never widens them; attach all of them for the role to work.
 */
export class AgentPolicies extends Construct {
  /** The IoT policies of each role, in attachment order. */
  public readonly rolePolicies: Readonly<Record<Role, readonly iot.CfnPolicy[]>>;
  /** The thing type of each role an accreditation can extend; an identity's thing must have its role's type. */
  public readonly thingTypes: Readonly<Partial<Record<Role, iot.CfnThingType>>>;
  /** The thing group of each accreditation. */
  public readonly accreditationGroups: Readonly<Record<string, iot.CfnThingGroup>>;
  /** The grant policies attached to each accreditation's thing group. */
  public readonly accreditationPolicies: Readonly<Record<string, readonly iot.CfnPolicy[]>>;
  /** The thing groups of each pool, by group name (`pool-<name>`, `accredit-<label>-pool-<name>`). */
  public readonly poolGroups: Readonly<Record<string, iot.CfnThingGroup>>;
  /** The policies attached to each pool thing group, by group name. */
  public readonly poolPolicies: Readonly<Record<string, readonly iot.CfnPolicy[]>>;

  constructor(scope: Construct, id: string, props: AgentPoliciesProps = {}) {
    super(scope, id);
    const prefix = props.namePrefix ?? DEFAULT_IOT_NAME_PREFIX;
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(prefix)) throw new Error(`${id}: namePrefix "${prefix}" must be 1-64 letters, digits, '_' or '-'`);
    const accreditations = [...new Set(props.accreditations ?? grantingAccreditations())].map(validateAccreditation);

    const rolePolicies = {} as Record<Role, iot.CfnPolicy[]>;
    for (const role of ROLES) rolePolicies[role] = this.policies(`Role-${role}`, `${prefix}-${role}`, renderIotPolicies(role, SIZING_ARN));
    this.rolePolicies = rolePolicies;

    const thingTypes: Partial<Record<Role, iot.CfnThingType>> = {};
    for (const role of accreditableRoles()) {
      thingTypes[role] = new iot.CfnThingType(this, `Type-${role}`, {
        thingTypeName: roleThingTypeName(role, prefix),
        thingTypeProperties: { thingTypeDescription: `Porchlight ${role}: accreditation groups grant a thing of this type ${role} rights only` },
      });
    }
    this.thingTypes = thingTypes;

    const groups: Record<string, iot.CfnThingGroup> = {};
    const grantPolicies: Record<string, iot.CfnPolicy[]> = {};
    for (const accreditation of accreditations) {
      const groupName = accreditationGroupName(accreditation);
      const group = new iot.CfnThingGroup(this, `Group-${accreditation}`, {
        thingGroupName: groupName,
        thingGroupProperties: { thingGroupDescription: `Porchlight: identities verified to hold the ${accreditation} accreditation` },
      });
      const policies = this.policies(`Grant-${accreditation}`, `${prefix}-accredit-${accreditation}`, renderIotAccreditationPolicies(accreditation, { ...SIZING_ARN, namePrefix: prefix }));
      policies.forEach((policy, i) => this.attachToGroup(`Attach-${accreditation}-${i + 1}`, policy, group));
      groups[accreditation] = group;
      grantPolicies[accreditation] = policies;
    }
    this.accreditationGroups = groups;
    this.accreditationPolicies = grantPolicies;

    const poolGroups: Record<string, iot.CfnThingGroup> = {};
    const poolPolicies: Record<string, iot.CfnPolicy[]> = {};
    const addPoolGroup = (pool: string, accreditation: string | undefined): void => {
      const groupName = accreditation === undefined ? poolGroupName(pool) : poolAccreditationGroupName(pool, accreditation);
      const id = accreditation === undefined ? `Pool-${pool}` : `Pool-${pool}-${accreditation}`;
      const group = new iot.CfnThingGroup(this, `${id}-Group`, {
        thingGroupName: groupName,
        thingGroupProperties: {
          thingGroupDescription: accreditation === undefined
            ? `Porchlight: agents in pool ${pool}; they read its offers and claim them under tasks/`
            : `Porchlight: agents in pool ${pool} that hold ${accreditation}; they read its offers under the roots ${accreditation} unlocks`,
        },
      });
      const policies = this.policies(`${id}-Grant`, `${prefix}-${groupName}`, renderIotPoolPolicies(pool, { ...SIZING_ARN, namePrefix: prefix, ...(accreditation !== undefined ? { accreditation } : {}) }));
      policies.forEach((policy, i) => this.attachToGroup(`${id}-Attach-${i + 1}`, policy, group));
      poolGroups[groupName] = group;
      poolPolicies[groupName] = policies;
    };
    for (const pool of [...new Set(props.pools ?? [])].map((p) => validateId('pool', p))) {
      addPoolGroup(pool, undefined);
      for (const accreditation of accreditations) addPoolGroup(pool, accreditation);
    }
    this.poolGroups = poolGroups;
    this.poolPolicies = poolPolicies;
  }

  /**
   * Policies from parts rendered with {@link SIZING_ARN} (longer than any real partition, region
   * or account, so every part fits once deployed), their ARNs pointed at this stack's own.
   */
  private policies(id: string, name: string, parts: readonly IotPolicyDocument[]): iot.CfnPolicy[] {
    const sizingPrefix = `arn:${SIZING_ARN.partition}:iot:${SIZING_ARN.region}:${SIZING_ARN.account}:`;
    const realPrefix = `arn:${Aws.PARTITION}:iot:${Aws.REGION}:${Aws.ACCOUNT_ID}:`;
    return parts.map((part, i) => {
      const policyDocument: IotPolicyDocument = {
        Version: part.Version,
        Statement: part.Statement.map((st) => ({ ...st, Resource: st.Resource.map((r) => realPrefix + r.slice(sizingPrefix.length)) })),
      };
      return new iot.CfnPolicy(this, i === 0 ? id : `${id}-${i + 1}`, { policyName: i === 0 ? name : `${name}-${i + 1}`, policyDocument });
    });
  }

  private attachToGroup(id: string, policy: iot.CfnPolicy, group: iot.CfnThingGroup): void {
    const policyName = policy.policyName ?? policy.ref;
    const target = group.attrArn;
    const call = (action: 'attachPolicy' | 'detachPolicy'): cr.AwsSdkCall => ({
      service: 'Iot',
      action,
      parameters: { policyName, target },
      physicalResourceId: cr.PhysicalResourceId.of(`${policyName}@${group.thingGroupName ?? Names.uniqueId(group)}`),
    });
    const attachment = new cr.AwsCustomResource(this, id, {
      onCreate: call('attachPolicy'),
      onDelete: call('detachPolicy'),
      installLatestAwsSdk: false,
      policy: cr.AwsCustomResourcePolicy.fromStatements([
        new iam.PolicyStatement({ actions: ['iot:AttachPolicy', 'iot:DetachPolicy'], resources: [target, policy.attrArn] }),
      ]),
    });
    attachment.node.addDependency(policy, group);
  }
}

/**
 * Acknowledges the findings cdk-nag raises on the singleton function CDK provisions for every
 * `AwsCustomResource` in a stack; call once per stack that holds {@link AgentPolicies}.
 */
export function acknowledgeCustomResourceProvider(scope: Construct): void {
  for (const child of scope.node.children) {
    if (!child.node.id.startsWith('AWS679f53fac002430cb0da5b7982bd2287')) continue;
    acknowledge(child, 'The CDK-provided custom-resource function logs through AWSLambdaBasicExecutionRole; it runs only at deploy time to attach IoT policies to thing groups.', LAMBDA_BASIC_EXECUTION_FINDING);
    acknowledge(child, 'The runtime of the CDK-provided custom-resource function is chosen by aws-cdk-lib, not by this app; it runs only at deploy time.', 'AwsSolutions-L1');
  }
}
