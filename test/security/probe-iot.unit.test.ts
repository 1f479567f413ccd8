/**
 * The probe matrix on AWS: every row decided by evaluating the IoT policies, thing-group
 * attachments and Lambda roles that CDK synthesizes for infra/.
 */
import { ROLES } from '../../core/policy';
import { loadIotDeployment, rolePolicyParts, type IotDeployment } from './iot-deployment';
import { functionVerdict, iotVerdict } from './iot-probe';
import { list, type PolicyStatementJson } from './policy-evaluator';
import { FUNCTION_ROWS, KNOWN_OPEN_IOT_POLICY_GAPS, ROWS, functionRowKey, rowKey } from './probe-matrix';
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

describe('known-open IoT policy gaps', () => {
  const requiresAttachedThing = (st: PolicyStatementJson): boolean => {
    const value = st.Condition?.Bool?.['iot:Connection.Thing.IsAttached'];
    return value !== undefined && list(value).map(String).every((v) => v === 'true');
  };

  it.each(KNOWN_OPEN_IOT_POLICY_GAPS.map((gap) => [gap.name, gap] as const))('%s is still open', (name) => {
    expect(name).toBe('no iot:Connection.Thing.IsAttached condition');
    const thingRoles = ROLES.filter((r) => r !== 'orchestrator');
    const unconditioned = thingRoles.flatMap((role) =>
      rolePolicyParts(deployment, role).flatMap((p) => list(p.document.Statement).filter((st) => st.Effect === 'Allow' && !requiresAttachedThing(st)).map(() => p.name)),
    );
    // Once every Allow of a thing-held policy requires an attached thing, delete the entry.
    expect(unconditioned.length).toBeGreaterThan(0);
  });
});
