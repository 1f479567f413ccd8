/**
 * The chaos benchmark: N two-step tasks on the local stack while agents are SIGKILLed and
 * restarted, the broker restarts once and 5 % of messages are delivered twice.
 *
 *   npx tsx bench/chaos.ts --tasks 1000 [--seed 42] [--concurrency 16] [--stress N] [--keep-state]
 *
 * `--stress N` runs N busy processes beside the run (a loaded machine: Lambda, agents and the
 * broker slow down together).
 *
 * Progress and a summary go to stderr; stdout gets exactly one line:
 *   completed=… failed=… lost=… duplicate_effects=… p95_ms=…
 * Exits 1 when a task was lost or an effect duplicated.
 */
import { parseArgs } from 'node:util';
import { cpus, loadavg } from 'node:os';
import { describeChaosReport, formatChaosLine, runChaosScenario } from './lib/chaos-scenario';
import { startStress } from './lib/stress';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      tasks: { type: 'string', default: '1000' },
      seed: { type: 'string', default: '42' },
      concurrency: { type: 'string', default: '16' },
      stress: { type: 'string', default: '0' },
      'keep-state': { type: 'boolean', default: false },
    },
  });
  const tasks = Number(values.tasks);
  const seed = Number(values.seed);
  const concurrency = Number(values.concurrency);
  const stressCount = Number(values.stress);
  for (const [name, value] of [['--tasks', tasks], ['--seed', seed], ['--concurrency', concurrency], ['--stress', stressCount]] as const) {
    const min = name === '--seed' || name === '--stress' ? 0 : 1;
    if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be a whole number${min === 0 ? '' : ' above 0'}`);
  }
  const stamp = (): string => new Date().toISOString().slice(11, 19);
  const stress = startStress(stressCount);
  const loadBefore = loadavg()[0]!;
  let report;
  try {
    report = await runChaosScenario({
      tasks, seed, concurrency, keepState: values['keep-state'],
      settleTimeoutMs: 180_000,
      progress: (line) => process.stderr.write(`[${stamp()}] ${line} load=${loadavg()[0]!.toFixed(2)}\n`),
    });
  } finally {
    await stress.stop();
  }
  process.stderr.write(`machine: ${cpus().length} cores, ${stressCount} busy process(es) beside the run, 1-min load ${loadBefore.toFixed(2)} before, ${loadavg()[0]!.toFixed(2)} after\n`);
  process.stderr.write(`${describeChaosReport(report)}\n`);
  if (values['keep-state']) process.stderr.write(`state kept in ${report.stateDir}\n`);
  process.stdout.write(`${formatChaosLine(report)}\n`);
  if (report.lost > 0 || report.duplicateEffects > 0) process.exitCode = 1;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/chaos: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
