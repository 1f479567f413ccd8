/**
 * `porchlight demo`: the whole system on one machine. Starts the local stack, launches the two
 * example agents as separate processes, submits a task that needs both of them (so the planner
 * must merge their proposals), prints the plan, each step's progress and the result, and exits
 * 0 once the task has completed (1 with the reason otherwise). `--keep` leaves everything running.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { quietLog } from '../../local/log';
import type { LocalStack } from '../../local/stack';
import type { TaskStatus } from '../../core/schemas';
import { launchAgent, type AgentProcess, type ExampleAgent } from '../agent-processes';
import type { TaskEvent } from '../client';
import { agentsTable, eventLine, planTable, resultSummary } from '../render';
import { applyNewIdentities, connectCliClient, localRegistry, startStackForCli, stackInfo, stopStackForCli, waitForAgents } from '../session';

/** The demo's agents: one per example, with the accreditation their résumés claim. */
export const DEMO_AGENTS: readonly { readonly example: ExampleAgent; readonly agentId: string; readonly accredit: readonly string[] }[] = [
  { example: 'sql-optimiser', agentId: 'sql-bot', accredit: ['ISO27001'] },
  { example: 'nl2chart', agentId: 'chart-bot', accredit: ['ISO27001'] },
];

/**
 * Issues each demo agent's certificate from the stack's CA and launches the agent as its own
 * process, logging under the stack's logs directory. Wait for them with `waitForAgents`.
 */
export async function launchDemoAgents(stack: Pick<LocalStack, 'issue' | 'endpoints' | 'paths'>): Promise<AgentProcess[]> {
  const launched: AgentProcess[] = [];
  try {
    for (const a of DEMO_AGENTS) {
      const cert = await stack.issue(a.agentId, 'agent', a.accredit);
      launched.push(launchAgent({
        example: a.example, agentId: a.agentId, host: stack.endpoints.mqttHost, port: stack.endpoints.mqttPort, ...cert, logDir: stack.paths.logsDir,
      }));
    }
    return launched;
  } catch (err) {
    // Nobody else holds these processes yet: stop them rather than leave them running.
    await Promise.all(launched.map((p) => p.stop()));
    throw err;
  }
}

/** The demo's task request. */
export const DEMO_REQUEST_PATH = resolve(__dirname, '..', '..', 'agents', 'examples', 'demo-request.json');

export interface DemoOptions {
  readonly stateDir: string;
  /** Leave the stack and agents running after the task finishes, until Ctrl-C. */
  readonly keep: boolean;
  readonly timeoutMs: number;
  readonly out?: (line: string) => void;
}

/** Runs the demo; resolves to the process exit code. */
export async function demo(options: DemoOptions): Promise<number> {
  const out = options.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const log = quietLog('stack');
  out('Starting the local stack (Mosquitto with mutual TLS, DynamoDB Local, rules engine, AWS API shims)…');
  const stack = await startStackForCli(options.stateDir, log);
  const agents: AgentProcess[] = [];
  let interrupted = false;
  const shutdown = async (): Promise<void> => {
    await Promise.all(agents.map((a) => a.stop()));
    await stopStackForCli(stack);
  };
  const onSigint = (): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    out('\nStopping…');
    void shutdown().then(() => process.exit(130));
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);

  const { registry, close: closeRegistry } = localRegistry(stackInfo(stack));
  try {
    const info = stackInfo(stack);
    out(`  broker    mqtts://${info.mqttHost}:${info.mqttPort} (client certificates required), ws://127.0.0.1:${info.wsPort}`);
    out(`  database  ${info.dynamoEndpoint} (table ${info.tableName})`);
    out(`  state     ${info.stateDir}`);

    agents.push(...(await launchDemoAgents(stack)));
    out(`\nLaunched ${agents.length} agent processes (${DEMO_AGENTS.map((a) => `${a.agentId}: ${a.example}`).join(', ')}); waiting for their résumés…`);
    const records = await waitForAgents(registry, DEMO_AGENTS.map((a) => a.agentId), 60_000);
    out(agentsTable(records));

    const client = await connectCliClient(info);
    try {
      const request: unknown = JSON.parse(readFileSync(DEMO_REQUEST_PATH, 'utf8'));
      const task = await client.submit(request);
      out(`\nSubmitted task ${task.taskId}: ${(request as { goal?: string }).goal ?? ''}`);
      let planShown = false;
      let lastStatus: TaskStatus | undefined;
      const onEvent = (e: TaskEvent): void => {
        if (e.type === 'status') {
          lastStatus = e.status;
          if (!planShown && e.status.plan) {
            planShown = true;
            out(`\n${planTable(e.status)}\n`);
          }
        }
        out(eventLine(e));
      };
      const result = await client.watch(task.taskId, onEvent, { taskRoot: task.taskRoot, timeoutMs: options.timeoutMs });
      if (lastStatus?.plan) out(`\nFinal plan state:\n${planTable(lastStatus)}`);
      out(`\n${resultSummary(result)}`);
      const outDir = join(stack.paths.stateDir, 'demo');
      mkdirSync(outDir, { recursive: true });
      for (const [name, value] of Object.entries(result.outputs)) {
        const file = join(outDir, name === 'chart_svg' ? 'chart.svg' : `${name}.${typeof value === 'string' ? 'txt' : 'json'}`);
        writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value, null, 2));
        out(`wrote ${file}`);
      }
      if (result.state !== 'completed') {
        out(`\nThe demo task did not complete: ${result.state}${result.reason ? ` — ${result.reason}` : ''}`);
        return 1;
      }
      out(`\nThe demo task completed with a plan merged from ${new Set(lastStatus?.plan?.steps.map((s) => s.proposedBy)).size} agents' proposals.`);
      return 0;
    } finally {
      await client.close();
    }
  } catch (err) {
    out(`\nThe demo failed: ${(err as Error).message}`);
    out(`Logs: ${stack.paths.logsDir}`);
    return 1;
  } finally {
    closeRegistry();
    process.removeListener('SIGINT', onSigint);
    process.removeListener('SIGTERM', onSigint);
    if (options.keep && !interrupted) {
      const watcher = applyNewIdentities(stack, log);
      out('\nThe stack and agents keep running (Ctrl-C to stop). In another terminal:');
      out('  npm run porchlight -- agents');
      out('  npm run porchlight -- submit agents/examples/demo-request.json');
      out('  npm run porchlight -- certs issue my-agent --kind agent');
      await new Promise<void>((done) => {
        process.once('SIGINT', () => done());
        process.once('SIGTERM', () => done());
      });
      watcher.close();
      out('Stopping…');
    }
    if (!interrupted) await shutdown();
  }
}
