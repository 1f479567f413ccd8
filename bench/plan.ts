/**
 * Plan benchmark: planTask over N proposals × 20 steps, plus rankAgents for every chosen step
 * against all agents with its skill, on a registry of 100,000 agents.
 *
 *   npx tsx bench/plan.ts            (or: npm run bench:plan)
 *   npx tsx bench/plan.ts --quick    (fewer repeats, for a smoke run)
 *
 * Shape of a proposal (realistic for Porchlight): five layers of artifacts from the task input to
 * the wanted `report` and `chart`; each layer has a small shared vocabulary, so every artifact has
 * many alternative producers across bidders; each bid makes 4 artifacts per layer, each step
 * consuming 1–2 of the bid's artifacts from the layer below (chains and diamonds).
 */
import os from 'node:os';
import type { AgentRecord } from '../core/model';
import { rankAgents } from '../core/matching';
import type { Bidder } from '../core/plan-types';
import { planTask } from '../core/planner';
import { Resume, TaskRequest, type ProposedStep } from '../core/schemas';
import { heapUsedMiB, percentile, randomInt, sample, seededRandom, timeRuns } from './lib/measure';

const AGENTS = 100_000;
const SKILLS = 400;
const SKILLS_PER_AGENT = 2;
const STEPS_PER_PROPOSAL = 20;
const LAYERS = 5;
const VOCABULARY_PER_LAYER = 6;
const SIZES = [10, 100, 1_000];
const INSTANCES_PER_SIZE = 5;
const REGIONS = ['eu-central-1', 'eu-west-1', 'us-east-1'];
const NOW = Date.parse('2030-01-01T00:00:00Z');

const quick = process.argv.includes('--quick');
const random = seededRandom(20_300_101);
const skillNames = Array.from({ length: SKILLS }, (_, i) => `skill-${String(i).padStart(3, '0')}`);

/** The registry and its per-skill index, as the DynamoDB adapter keeps them (one index row per agent and skill). */
function buildRegistry(): { byId: Map<string, AgentRecord>; bySkill: Map<string, AgentRecord[]> } {
  const byId = new Map<string, AgentRecord>();
  const bySkill = new Map<string, AgentRecord[]>(skillNames.map((s) => [s, []]));
  for (let i = 0; i < AGENTS; i += 1) {
    const agentId = `agent-${String(i).padStart(6, '0')}`;
    const skills = sample(random, skillNames, SKILLS_PER_AGENT);
    const measured = random() < 0.5;
    const max = randomInt(random, 1, 8);
    const record: AgentRecord = {
      agentId,
      resume: Resume.parse({
        skills,
        cost: { usd: randomInt(random, 1, 100) / 1000, p95_ms: randomInt(random, 50, 2_000) },
        region: REGIONS[randomInt(random, 0, REGIONS.length - 1)]!,
        accredit: random() < 0.3 ? ['gdpr'] : [],
      }),
      state: random() < 0.9 ? 'online' : random() < 0.5 ? 'draining' : 'offline',
      load: { active: randomInt(random, 0, max), max },
      ...(measured
        ? { telemetry: { v: 1 as const, executions: randomInt(random, 1, 500), costUsd: randomInt(random, 1, 100) / 1000, p95Ms: randomInt(random, 50, 2_000), successRate: randomInt(random, 70, 100) / 100 } }
        : {}),
      verifiedAccredit: random() < 0.3 ? ['gdpr'] : [],
      unverifiedAccredit: [],
      updatedAt: NOW,
      version: 1,
    };
    byId.set(agentId, record);
    for (const s of skills) bySkill.get(s)!.push(record);
  }
  return { byId, bySkill };
}

function artifactName(layer: number, k: number): string {
  if (layer === LAYERS) return ['report', 'chart', 'summary', 'table-final', 'notes', 'appendix'][k]!;
  return `l${layer}-a${k}`;
}

/** One bid: 4 artifacts per layer, each step consuming 1–2 of the bid's artifacts one layer down. */
function makeBid(agent: AgentRecord): Bidder {
  const steps: ProposedStep[] = [];
  const perLayer = STEPS_PER_PROPOSAL / LAYERS;
  let below = ['question'];
  for (let layer = 1; layer <= LAYERS; layer += 1) {
    const made = sample(random, Array.from({ length: VOCABULARY_PER_LAYER }, (_, k) => artifactName(layer, k)), perLayer);
    if (layer === LAYERS && !made.includes('report')) made[0] = 'report';
    if (layer === LAYERS && !made.includes('chart')) made[made[0] === 'chart' ? 0 : 1] = 'chart';
    for (const artifact of made) {
      steps.push({
        id: `st${steps.length + 1}`,
        skill: agent.resume.skills[randomInt(random, 0, agent.resume.skills.length - 1)]!,
        consumes: sample(random, below, Math.min(below.length, randomInt(random, 1, 2))),
        produces: [artifact],
        estUsd: randomInt(random, 1, 200) / 10_000,
        estMs: randomInt(random, 20, 800),
      });
    }
    below = made;
  }
  return { agentId: agent.agentId, steps };
}

interface Instance {
  request: TaskRequest;
  bids: Bidder[];
  agents: Map<string, AgentRecord>;
}

function makeInstance(proposals: number, byId: Map<string, AgentRecord>, online: readonly AgentRecord[]): Instance {
  const bidders = sample(random, online, proposals);
  const bids = bidders.map(makeBid);
  const agents = new Map(bidders.map((a) => [a.agentId, byId.get(a.agentId)!]));
  const request = TaskRequest.parse({
    goal: 'chart and report of last quarter',
    input: { question: 'revenue by region last quarter' },
    want: ['report', 'chart'],
    constraints: { maxUsd: 10, deadline: new Date(NOW + 60_000).toISOString() },
  });
  return { request, bids, agents };
}

function cpuMs(from: NodeJS.CpuUsage, to: NodeJS.CpuUsage): number {
  return (to.user - from.user + to.system - from.system) / 1000;
}

function main(): void {
  const heapBefore = heapUsedMiB();
  const registryStart = performance.now();
  const { byId, bySkill } = buildRegistry();
  const registryMs = performance.now() - registryStart;
  const heapRegistry = heapUsedMiB();
  const online = [...byId.values()].filter((a) => a.state === 'online');
  const candidatesPerSkill = [...bySkill.values()].map((l) => l.length);
  console.log(`registry: ${AGENTS} agents, ${SKILLS} skills (${Math.min(...candidatesPerSkill)}–${Math.max(...candidatesPerSkill)} agents per skill), built in ${registryMs.toFixed(0)} ms, heap +${(heapRegistry - heapBefore).toFixed(1)} MiB`);
  console.log(`node ${process.version}, ${quick ? 'quick run' : 'full run'}\n`);

  const rows: string[][] = [['proposals', 'steps', 'plan med', 'plan p95', 'match med', 'total med', 'total p95', 'wall med', 'growth', 'plan steps', 'candidates', 'heap MiB']];
  let previous: { proposals: number; plan: number } | undefined;
  for (const proposals of SIZES) {
    const instances = Array.from({ length: INSTANCES_PER_SIZE }, () => makeInstance(proposals, byId, online));
    const repeats = quick ? 10 : proposals >= 1_000 ? 60 : 200;
    const warmup = quick ? 3 : Math.max(10, repeats / 4);
    let planSteps = 0;
    let candidates = 0;
    let failures = 0;
    let bounded = 0;
    const planCpu: number[] = [];
    const matchCpu: number[] = [];
    const total = timeRuns(
      (run) => {
        const instance = instances[run % instances.length]!;
        const c0 = process.cpuUsage();
        const outcome = planTask({ ...instance, now: NOW });
        const c1 = process.cpuUsage();
        if (!outcome.ok) {
          failures += 1;
          return;
        }
        if (outcome.notes.some((n) => n.includes('search stopped'))) bounded += 1;
        const context = { constraints: instance.request.constraints, exclude: [], now: NOW };
        candidates = 0;
        for (const step of outcome.steps) {
          const pool = bySkill.get(step.skill) ?? [];
          candidates += pool.length;
          if (rankAgents(step, pool, context).chosen === undefined) failures += 1;
        }
        const c2 = process.cpuUsage();
        planCpu.push(cpuMs(c0, c1));
        matchCpu.push(cpuMs(c1, c2));
        planSteps = outcome.steps.length;
      },
      warmup,
      repeats,
    );
    if (failures > 0) throw new Error(`${failures} runs found no plan or no agent; the benchmark instance is broken`);
    const plan = percentile(planCpu.slice(-repeats), 50);
    const growth = previous === undefined ? '—' : `${(plan / previous.plan / (proposals / previous.proposals)).toFixed(2)}×`;
    previous = { proposals, plan };
    if (bounded > 0) console.log(`${proposals} proposals: the exact search hit its node limit in ${bounded} of ${warmup + repeats} runs`);
    rows.push([
      String(proposals),
      String(proposals * STEPS_PER_PROPOSAL),
      plan.toFixed(2),
      percentile(planCpu.slice(-repeats), 95).toFixed(2),
      percentile(matchCpu.slice(-repeats), 50).toFixed(2),
      percentile(total.cpuMs, 50).toFixed(2),
      percentile(total.cpuMs, 95).toFixed(2),
      percentile(total.wallMs, 50).toFixed(2),
      growth,
      String(planSteps),
      String(candidates),
      heapUsedMiB().toFixed(0),
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const row of rows) console.log(row.map((cell, c) => cell.padStart(widths[c]!)).join('  '));
  console.log('\nTimes in ms of process CPU (robust to other load on a shared machine), except "wall med" (wall clock).');
  console.log('plan = planTask; match = rankAgents for every chosen step against all agents with its skill (candidates = their');
  console.log('total count in the last run); total = plan + match. growth = (plan time ratio) / (size ratio) vs the previous');
  console.log('row: 1.00× is linear, below 1 sublinear.');
  console.log(`load average while running: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}; cores: ${os.cpus().length}`);
}

main();
