/**
 * The probe matrix on AWS: every row decided by evaluating the IoT policies, thing-group
 * attachments and Lambda roles that CDK synthesizes for infra/.
 */
import { ROLES, THING_ATTACHED_VARIABLE, THING_TYPE_VARIABLE } from '../../core/policy';
import { groupPolicies, loadIotDeployment, rolePolicyParts, roleThingType, type IotDeployment } from './iot-deployment';
import { functionVerdict, iotVerdict } from './iot-probe';
import { actionMatches, list } from './policy-evaluator';
import { FUNCTION_ROWS, ROWS, functionRowKey, rowKey } from './probe-matrix';
import { judge, matrixProblems } from './verdicts';

// Synthesis takes a few seconds, much longer on a loaded machine.
jest.setTimeout(120_000);

let deployment: IotDeployment;
beforeAll(() => {
  deployment = loadIotDeployment();
});

describe('probe matrix', () => {
  it('is consistent (identities exist, keys are unique, known-open entries name rows)', () => {
    expect(matrixProblems()).toEqual([]);
  });
});

describe('probe matrix on AWS IoT Core (synthesized policies)', () => {
  it.each(ROWS.map((row) => [rowKey(row), row] as const))('%s', (_key, row) => {
    expect(judge(row, 'iot', iotVerdict(deployment, row))).toBeNull();
  });
});

describe('probe matrix on the functions\' IAM roles (IoT data plane)', () => {
  it.each(FUNCTION_ROWS.map((row) => [functionRowKey(row), row] as const))('%s', (_key, row) => {
    expect(judge(row, 'iot', functionVerdict(deployment, row))).toBeNull();
  });
});

describe('the synthesized IoT policies have the properties the rows rely on', () => {
  const thingRoles = ROLES.filter((r) => r !== 'orchestrator');

  it('every iot:Connect grant of every role needs the certificate attached to the thing', () => {
    const unconditioned = ROLES.flatMap((role) =>
      rolePolicyParts(deployment, role).flatMap((p) =>
        list(p.document.Statement)
          .filter((st) => st.Effect === 'Allow' && list(st.Action).some((a) => actionMatches(a, 'iot:Connect')))
          .filter((st) => {
            const attached = st.Condition?.Bool?.[THING_ATTACHED_VARIABLE];
            return attached === undefined || !list(attached).map(String).every((v) => v === 'true');
          })
          .map(() => p.name),
      ),
    );
    expect(unconditioned).toEqual([]);
  });

  it('every thing role but the orchestrator has a thing type', () => {
    expect(thingRoles.map((role) => roleThingType(deployment, role))).toEqual(thingRoles.map((role) => `porchlight-${role}`));
  });

  it("every statement of an accreditation group's policies is conditioned on one role's thing type", () => {
    const groups = Object.keys(deployment.groupAttachments);
    expect(groups.length).toBeGreaterThan(0);
    const loose = groups.flatMap((group) =>
      groupPolicies(deployment, group).flatMap((p) =>
        list(p.document.Statement)
          .filter((st) => {
            const type = st.Condition?.StringEquals?.[THING_TYPE_VARIABLE];
            return type === undefined || list(type).length !== 1 || !deployment.thingTypes.has(String(list(type)[0]));
          })
          .map((st) => `${p.name}: ${JSON.stringify(st)}`),
      ),
    );
    expect(loose).toEqual([]);
  });
});
