/**
 * Decides probe-matrix rows on AWS: each identity is a thing of its own name, created with its
 * role's thing type, with its role's policy parts attached to its certificate and the policies of
 * its thing groups inherited — `accredit-<label>` for each accreditation, `pool-<name>` for each
 * pool and `accredit-<label>-pool-<name>` for each pair — exactly as the synthesized app defines them.
 */
import { accreditationGroupName, poolAccreditationGroupName, poolGroupName } from '../../core/policy';
import { authorizeDataPlanePublish, authorizeMqtt, describeAuthorization, type IotConnection, type MqttOperation } from './iot-authorizer';
import { groupPolicies, rolePolicyParts, roleThingType, type IotDeployment } from './iot-deployment';
import { IDENTITIES, type FunctionProbeRow, type ProbeIdentity, type ProbeRow } from './probe-matrix';
import type { Observed } from './verdicts';

/** The connection `identity` opens with `clientId` (its own id unless a row says otherwise). */
export function iotConnection(deployment: IotDeployment, identity: ProbeIdentity, clientId: string = identity.id): IotConnection {
  const parts = rolePolicyParts(deployment, identity.role);
  const policies = [
    ...(identity.iotPolicyParts === 'first' ? parts.slice(0, 1) : parts),
    ...identity.accreditations.flatMap((a) => groupPolicies(deployment, accreditationGroupName(a))),
    ...(identity.pools ?? []).flatMap((p) => [
      ...requiredGroupPolicies(deployment, poolGroupName(p)),
      ...identity.accreditations.flatMap((a) => requiredGroupPolicies(deployment, poolAccreditationGroupName(p, a))),
    ]),
  ];
  const thingType = roleThingType(deployment, identity.role);
  return { clientId, certificateThings: [identity.id], policies, ...(thingType !== undefined ? { thingTypes: { [identity.id]: thingType } } : {}) };
}

/** A pool group's policies; throws when the deployment has none, so a membership never silently grants nothing. */
function requiredGroupPolicies(deployment: IotDeployment, group: string): ReturnType<typeof groupPolicies> {
  const policies = groupPolicies(deployment, group);
  if (policies.length === 0) throw new Error(`the synthesized app has no policy on thing group ${group}; add the pool to PROBE_POOLS`);
  return policies;
}

function operation(row: ProbeRow): MqttOperation {
  switch (row.action) {
    case 'connect':
      return { kind: 'connect' };
    case 'publish':
      return { kind: 'publish', topic: row.target, retain: false };
    case 'publish-retained':
      return { kind: 'publish', topic: row.target, retain: true };
    case 'subscribe':
      return { kind: 'subscribe', filter: row.target };
    case 'receive':
      return { kind: 'receive', topic: row.target, filter: row.via ?? row.target };
  }
}

/** The IoT verdict of a matrix row. */
export function iotVerdict(deployment: IotDeployment, row: ProbeRow): Observed {
  const identity = IDENTITIES[row.identity];
  if (identity === undefined) throw new Error(`unknown identity ${row.identity}`);
  const conn = iotConnection(deployment, identity, row.action === 'connect' ? row.target : identity.id);
  const auth = authorizeMqtt(conn, operation(row));
  return { verdict: auth.decision, detail: describeAuthorization(auth) };
}

/** The IAM verdict of a function's data-plane publish. */
export function functionVerdict(deployment: IotDeployment, row: FunctionProbeRow): Observed {
  const policies = deployment.functionPolicies[row.fn];
  if (policies === undefined) throw new Error(`no IAM policy for function ${row.fn} in the synthesized app`);
  const auth = authorizeDataPlanePublish(policies, row.topic, row.action === 'publish-retained');
  return { verdict: auth.decision, detail: describeAuthorization(auth) };
}
