/**
 * Runs the nl2chart agent as a process: `npx tsx agents/examples/nl2chart/main.ts` with
 * PORCHLIGHT_HOST, PORCHLIGHT_PORT, PORCHLIGHT_CERT, PORCHLIGHT_KEY, PORCHLIGHT_CA and
 * PORCHLIGHT_AGENT_ID set.
 */
import { runAgentProcess } from '../../runtime/run-process';
import { createNl2ChartAgent } from './agent';

runAgentProcess(createNl2ChartAgent).catch((err: unknown) => {
  process.stderr.write(`nl2chart: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
