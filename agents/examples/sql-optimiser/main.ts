/**
 * Runs the sql-optimiser agent as a process: `npx tsx agents/examples/sql-optimiser/main.ts`
 * with PORCHLIGHT_HOST, PORCHLIGHT_PORT, PORCHLIGHT_CERT, PORCHLIGHT_KEY, PORCHLIGHT_CA and
 * PORCHLIGHT_AGENT_ID set.
 */
import { runAgentProcess } from '../../runtime/run-process';
import { createSqlOptimiserAgent } from './agent';

runAgentProcess(createSqlOptimiserAgent).catch((err: unknown) => {
  process.stderr.write(`sql-optimiser: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
