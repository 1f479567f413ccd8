import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createChaosWorker, type EffectLine } from '../../../../../agents/examples/chaos-worker/agent';
import { assignmentFor, executeContext } from '../helpers';

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'porchlight-chaos-worker-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function ledger(path: string): EffectLine[] {
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.endsWith('}')).map((l) => JSON.parse(l) as EffectLine);
}

describe('chaos worker effect', () => {
  it('records its idempotency key with the effect, and a resumed attempt with that key returns the recorded effect instead of a second one', async () => {
    const ledgerPath = join(dir, 'effects.jsonl');
    const worker = createChaosWorker('chaos-a-0', { skill: 'chaos-a', ledgerPath, minWorkMs: 0, maxWorkMs: 1 });
    const a = assignmentFor('chaos-a', { seed: 's' }, ['a_effect']);
    const first = await worker.execute(a, executeContext(undefined, { idempotencyKey: 'k1' }).ctx);
    // An unreadable line mentioning the key is not an effect, and does not break the lookup.
    appendFileSync(ledgerPath, '{"idempotencyKey":"k1","effe\n');
    const resumed = await worker.execute(a, executeContext(undefined, { idempotencyKey: 'k1', resumed: true }).ctx);
    expect(resumed).toEqual(first);
    expect(ledger(ledgerPath).filter((l) => l.idempotencyKey === 'k1')).toHaveLength(1);

    // Resumed, but the effect never happened: it happens now, once.
    await worker.execute(a, executeContext(undefined, { idempotencyKey: 'k2', resumed: true }).ctx);
    expect(ledger(ledgerPath).map((l) => l.idempotencyKey)).toEqual(['k1', 'k2']);
  });
});
