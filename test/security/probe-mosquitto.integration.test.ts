/**
 * The probe matrix on the local broker: every row decided by a real Mosquitto running the ACL
 * generated from core/policy.ts, with certificates from the local CA; every function row by the
 * local data-plane shim, which checks each function's publishes against its grant.
 */
import { startTestBroker, type TestBroker } from '../helpers/local-stack';
import { probeMosquitto, type MosquittoProbe } from './mosquitto-probe';
import { FUNCTION_ROWS, ROWS, functionRowKey, rowKey } from './probe-matrix';
import { judge } from './verdicts';

let broker: TestBroker;
let probe: MosquittoProbe;

// A few hundred broker round trips: seconds on an idle machine, far longer on a loaded one.
beforeAll(async () => {
  broker = await startTestBroker();
  probe = await probeMosquitto(broker);
}, 300_000);

afterAll(async () => {
  await broker?.cleanup();
}, 60_000);

describe('probe matrix on Mosquitto (generated ACL, local CA certificates)', () => {
  it('ran with the ACL rendered from the policy model', () => {
    expect(probe.generatedAcl).toBe(probe.renderedAcl);
  });

  it.each(ROWS.map((row) => [rowKey(row), row] as const))('%s', (key, row) => {
    const observed = probe.verdicts.get(key);
    if (observed === undefined) throw new Error(`${key} was not probed`);
    expect(judge(row, 'mosquitto', observed)).toBeNull();
  });
});

describe('probe matrix on the local data-plane shim (functions\' grants)', () => {
  it.each(FUNCTION_ROWS.map((row) => [functionRowKey(row), row] as const))('%s', (key, row) => {
    const observed = probe.verdicts.get(key);
    if (observed === undefined) throw new Error(`${key} was not probed`);
    expect(judge(row, 'mosquitto', observed)).toBeNull();
  });
});
