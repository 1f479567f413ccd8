/**
 * Pools are membership: a pool step is offered without a token or inputs, claimed by one verified
 * member (first claim wins, fenced like an assignment), and its output accepted only from the
 * claimant.
 */
import type { OrchestratorConfig } from '../../../core/orchestrator';
import { Assignment, PoolOffer, RejectNotice, TaskStatus, type ProposedStep, type Resume } from '../../../core/schemas';
import { RegistryService } from '../../../core/registry-service';
import { InMemoryRegistry, ManualClock, RecordingPublisher, StaticVerifier, inbound, orchestratorHarness } from '../../helpers/in-memory-ports';

type Harness = ReturnType<typeof orchestratorHarness>;

const POOL = 'sql-pool';
const POOL_STEP: ProposedStep = { id: 'write-sql', skill: 'sql-optimiser', consumes: ['question'], produces: ['sql'], estUsd: 0.02, estMs: 300, pool: POOL };

function resume(extra: Partial<Resume> = {}): Resume {
  return { v: 1, skills: ['sql-optimiser'], cost: { usd: 0.02, p95_ms: 350 }, region: 'eu-central-1', accredit: [], pools: [POOL], ...extra };
}

/** Registers an agent; `member` says whether its identity is confirmed in the pool. */
async function register(h: Harness, agentId: string, opts: { member?: boolean; resume?: Partial<Resume>; accredit?: string[] } = {}): Promise<void> {
  const r = resume(opts.resume);
  await h.registry.putResume(agentId, r, { verified: opts.accredit ?? [], unverified: [], pools: opts.member === false ? [] : [...(r.pools ?? [])] }, h.clock.now());
}

/** A task whose only step is offered to the pool. */
async function offered(h: Harness, taskId = 't1', request: Record<string, unknown> = {}): Promise<PoolOffer> {
  const accredit = (request.constraints as { accredit?: string[] } | undefined)?.accredit ?? [];
  await register(h, 'proposer', { resume: { pools: [], accredit }, accredit });
  await h.orchestrator.onRequest(inbound(`clients/client-1/tasks/${taskId}/request`, {
    goal: 'write sql', input: { question: 'revenue?' }, want: ['sql'], skills: ['sql-optimiser'], ...request,
  }));
  await h.orchestrator.onProposal(inbound(`tasks/${taskId}/proposal/proposer`, { steps: [POOL_STEP] }));
  const payload = h.publisher.last(`tasks/${taskId}/pool/${POOL}`);
  if (payload === undefined) throw new Error('no offer published');
  return PoolOffer.parse(payload);
}

function claim(h: Harness, offer: PoolOffer, agentId: string, opts: { clientId?: string; epoch?: number } = {}) {
  return h.orchestrator.onClaim(inbound(`tasks/${offer.taskId}/claim/${offer.stepId}/${agentId}`,
    { v: 1, taskId: offer.taskId, stepId: offer.stepId, epoch: opts.epoch ?? offer.epoch },
    opts.clientId !== undefined ? { clientId: opts.clientId } : {}));
}

function assignmentOf(h: Harness, agentId: string, taskId = 't1'): Assignment | undefined {
  const payload = h.publisher.last(`tasks/${taskId}/assign/${agentId}`);
  return payload === undefined ? undefined : Assignment.parse(payload);
}

function output(a: Assignment, agentId: string, opts: { clientId?: string } = {}) {
  return inbound(`tasks/${a.taskId}/output/${a.stepId}/${agentId}`, {
    v: 1, taskId: a.taskId, stepId: a.stepId, epoch: a.epoch, token: a.token, ok: true, output: { sql: 'SELECT 1' }, usage: { usd: 0.01, ms: 5 },
  }, opts.clientId !== undefined ? { clientId: opts.clientId } : {});
}

function notices(h: Harness, agentId: string): RejectNotice[] {
  return h.publisher.on(`agents/${agentId}/errors`).map((m) => RejectNotice.parse(m.payload));
}

function status(h: Harness, taskId = 't1'): TaskStatus {
  return TaskStatus.parse(h.publisher.retained.get(`clients/client-1/tasks/${taskId}/status`));
}

function harness(config: Partial<OrchestratorConfig> = {}): Harness {
  return orchestratorHarness(config);
}

describe('pool steps', () => {
  it('offers the step on the pool topic without a token or inputs, and assigns nobody yet', async () => {
    const h = harness();
    const offer = await offered(h);
    expect(offer).toMatchObject({ taskId: 't1', stepId: 's1', pool: POOL, epoch: 1, skill: 'sql-optimiser', consumes: ['question'], produces: ['sql'] });
    const raw = h.publisher.last(`tasks/t1/pool/${POOL}`) as Record<string, unknown>;
    expect(raw).not.toHaveProperty('token');
    expect(raw).not.toHaveProperty('inputs');
    expect(h.publisher.on('tasks/t1/assign/#')).toEqual([]);
    expect(status(h).plan?.steps[0]).toMatchObject({ state: 'assigned', pool: POOL, epoch: 1 });
    expect(status(h).plan?.steps[0]).not.toHaveProperty('agentId');
  });

  it('gives the step to the first claimant as a fenced assignment on its own topic', async () => {
    const h = harness();
    const offer = await offered(h);
    await register(h, 'member-a');
    expect(await claim(h, offer, 'member-a')).toMatchObject({ status: 'accepted' });
    const a = assignmentOf(h, 'member-a');
    expect(a).toMatchObject({ taskId: 't1', stepId: 's1', epoch: 2, agentId: 'member-a', inputs: { question: 'revenue?' } });
    expect(a?.token.length).toBeGreaterThanOrEqual(16);
    expect(status(h).plan?.steps[0]).toMatchObject({ state: 'assigned', agentId: 'member-a', epoch: 2, attempts: 1 });
    expect(h.timer.of('lease', 't1').map((t) => (t.event as { epoch: number }).epoch)).toEqual([1, 2]);
  });

  it('treats the winner\'s claim delivered again as a duplicate and assigns only once', async () => {
    const h = harness();
    const offer = await offered(h);
    await register(h, 'member-a');
    await claim(h, offer, 'member-a');
    expect(await claim(h, offer, 'member-a')).toMatchObject({ status: 'duplicate' });
    expect(h.publisher.on('tasks/t1/assign/member-a')).toHaveLength(1);
    expect(notices(h, 'member-a')).toEqual([]);
  });

  it('refuses a second claimant with already-claimed on its errors topic', async () => {
    const h = harness();
    const offer = await offered(h);
    await register(h, 'member-a');
    await register(h, 'member-b');
    await claim(h, offer, 'member-a');
    expect(await claim(h, offer, 'member-b')).toMatchObject({ status: 'rejected', code: 'already-claimed' });
    expect(notices(h, 'member-b')).toEqual([expect.objectContaining({ code: 'already-claimed', taskId: 't1', stepId: 's1' })]);
    expect(h.publisher.on('tasks/t1/assign/member-b')).toEqual([]);
    expect(status(h).plan?.steps[0]).toMatchObject({ agentId: 'member-a', epoch: 2 });
  });

  it('refuses a claim from an agent whose identity is not confirmed in the pool', async () => {
    const h = harness();
    const offer = await offered(h);
    await register(h, 'outsider', { member: false });
    expect(await claim(h, offer, 'outsider')).toMatchObject({ status: 'rejected', code: 'not-authorized' });
    expect(notices(h, 'outsider')[0]?.message).toMatch(/not a verified member of pool sql-pool/);
    expect(h.publisher.on('tasks/t1/assign/#')).toEqual([]);
    // The offer is still open for a member.
    await register(h, 'member-a');
    expect(await claim(h, offer, 'member-a')).toMatchObject({ status: 'accepted' });
  });

  it('refuses a claim from an unknown agent and from a member without the step\'s accreditation', async () => {
    const h = harness();
    const offer = await offered(h, 't1', { constraints: { accredit: ['ISO27001'] } });
    expect(await claim(h, offer, 'ghost')).toMatchObject({ status: 'rejected', code: 'not-authorized' });
    await register(h, 'member-a', { resume: { accredit: ['ISO27001'] } });
    expect(await claim(h, offer, 'member-a')).toMatchObject({ status: 'rejected', code: 'not-authorized' });
    expect(notices(h, 'member-a')[0]?.message).toMatch(/missing verified accreditation ISO27001/);
    await register(h, 'member-b', { resume: { accredit: ['ISO27001'] }, accredit: ['ISO27001'] });
    expect(await claim(h, offer, 'member-b')).toMatchObject({ status: 'accepted' });
  });

  it('refuses a claim published under another agent\'s id (AWS clientid())', async () => {
    const h = harness();
    const offer = await offered(h);
    await register(h, 'member-a');
    expect(await claim(h, offer, 'member-a', { clientId: 'member-b' })).toMatchObject({ status: 'rejected', code: 'not-authorized' });
    expect(h.publisher.on('tasks/t1/assign/#')).toEqual([]);
  });

  it('refuses a claim of an offer that was never made', async () => {
    const h = harness();
    const offer = await offered(h);
    await register(h, 'member-a');
    expect(await claim(h, offer, 'member-a', { epoch: 7 })).toMatchObject({ status: 'rejected', code: 'stale-epoch' });
  });

  it('accepts the output only from the claimant, with the claimed epoch\'s token', async () => {
    const h = harness();
    const offer = await offered(h);
    await register(h, 'member-a');
    await register(h, 'member-b');
    await claim(h, offer, 'member-a');
    const a = assignmentOf(h, 'member-a')!;
    expect(await h.orchestrator.onOutput(output(a, 'member-b'))).toMatchObject({ status: 'rejected', code: 'not-authorized' });
    expect(status(h).state).toBe('working');
    expect(await h.orchestrator.onOutput(output(a, 'member-a'))).toMatchObject({ status: 'accepted' });
    expect(status(h).state).toBe('completed');
  });

  it('accepts no output for an offer nobody has claimed', async () => {
    const h = harness();
    const offer = await offered(h);
    const forged = { v: 1, taskId: 't1', stepId: 's1', epoch: offer.epoch, token: 'x'.repeat(22), ok: true, output: { sql: 'q' } };
    expect(await h.orchestrator.onOutput(inbound('tasks/t1/output/s1/member-a', forged))).toMatchObject({ status: 'rejected', code: 'not-authorized' });
    expect(status(h).state).toBe('working');
  });

  it('offers the step again when nobody claims it within the lease, and a late claim of the old offer is stale', async () => {
    const h = harness();
    const first = await offered(h);
    const lease = h.timer.of('lease', 't1')[0]!;
    h.clock.set(lease.dueAt);
    expect(await h.orchestrator.onTimer(lease.event)).toMatchObject({ status: 'accepted' });
    const second = PoolOffer.parse(h.publisher.last(`tasks/t1/pool/${POOL}`));
    expect(second.epoch).toBe(2);
    expect(status(h).errors[0]).toMatchObject({ code: 'lease-expired', message: expect.stringMatching(/no member of pool sql-pool claimed step s1/) });
    await register(h, 'member-a');
    expect(await claim(h, first, 'member-a')).toMatchObject({ status: 'rejected', code: 'stale-epoch' });
    expect(await claim(h, second, 'member-a')).toMatchObject({ status: 'accepted' });
    expect(assignmentOf(h, 'member-a')?.epoch).toBe(3);
  });

  it('fails the task with a reason once the offer went unclaimed maxAttempts times', async () => {
    const h = harness({ maxAttempts: 2 });
    await offered(h);
    for (let i = 0; i < 2; i++) {
      const lease = h.timer.of('lease', 't1').at(-1)!;
      h.clock.set(lease.dueAt);
      await h.orchestrator.onTimer(lease.event);
    }
    expect(status(h).state).toBe('failed');
    expect(status(h).errors.at(-1)?.message).toMatch(/step s1 .* failed after 2 attempt\(s\); last error: no member of pool sql-pool claimed/);
  });

  it('re-offers a claimed step whose claimant let its lease lapse, and keeps that claimant out', async () => {
    const h = harness();
    const offer = await offered(h);
    await register(h, 'member-a');
    await register(h, 'member-b');
    await claim(h, offer, 'member-a');
    const lease = h.timer.of('lease', 't1').at(-1)!;
    h.clock.set(lease.dueAt);
    await h.orchestrator.onTimer(lease.event);
    const again = PoolOffer.parse(h.publisher.last(`tasks/t1/pool/${POOL}`));
    expect(again.epoch).toBe(3);
    expect(await claim(h, again, 'member-a')).toMatchObject({ status: 'rejected', code: 'not-authorized' });
    expect(await claim(h, again, 'member-b')).toMatchObject({ status: 'accepted' });
    expect(assignmentOf(h, 'member-b')?.epoch).toBe(4);
  });

  it('re-offers the step of a claimant that went away', async () => {
    const h = harness();
    const offer = await offered(h);
    await register(h, 'member-a');
    await claim(h, offer, 'member-a');
    await h.orchestrator.onAgentGone('member-a', 'connection lost');
    const again = PoolOffer.parse(h.publisher.last(`tasks/t1/pool/${POOL}`));
    expect(again.epoch).toBe(3);
    // Going away is not failing: it may claim the step again.
    expect(await claim(h, again, 'member-a')).toMatchObject({ status: 'accepted' });
  });

  it('refuses a claim for a step that is not a pool step', async () => {
    const h = harness();
    await register(h, 'solo', { resume: { pools: [] } });
    await h.orchestrator.onRequest(inbound('clients/client-1/tasks/t2/request', { goal: 'g', input: { question: 'q' }, want: ['sql'], skills: ['sql-optimiser'] }));
    await h.orchestrator.onProposal(inbound('tasks/t2/proposal/solo', { steps: [{ ...POOL_STEP, pool: undefined }] }));
    const a = assignmentOf(h, 'solo', 't2')!;
    expect(await h.orchestrator.onClaim(inbound('tasks/t2/claim/s1/solo', { v: 1, taskId: 't2', stepId: 's1', epoch: a.epoch }))).toMatchObject({ status: 'rejected', code: 'invalid-state' });
  });
});

describe('pool membership in the registry', () => {
  it('keeps only the résumé pools the identity is confirmed in, and tells the agent about the rest', async () => {
    const registry = new InMemoryRegistry();
    const publisher = new RecordingPublisher();
    const service = new RegistryService({
      registry, publisher, clock: new ManualClock(), verifier: new StaticVerifier({}, { 'member-a': ['sql-pool'] }), orchestrator: { onAgentGone: async () => undefined },
    });
    const r = { ...resume(), pools: ['sql-pool', 'gpu-pool'] };
    expect(await service.onResume(inbound('agents/member-a/resume', r))).toMatchObject({ status: 'accepted', detail: expect.stringMatching(/unconfirmed pools dropped: gpu-pool/) });
    expect((await registry.get('member-a'))?.verifiedPools).toEqual(['sql-pool']);
    expect(publisher.on('agents/member-a/errors').map((m) => RejectNotice.parse(m.payload).message)).toEqual([expect.stringMatching(/pool\(s\) gpu-pool .* not confirmed/)]);
    expect(await service.onResume(inbound('agents/member-a/resume', r))).toMatchObject({ status: 'duplicate' });
  });
});
