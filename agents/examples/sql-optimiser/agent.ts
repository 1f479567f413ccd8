/**
 * `sql-optimiser`: rewrites a SELECT (constant folding, redundant DISTINCT, predicate push-down,
 * column qualification) and runs it over tables given as JSON rows.
 *
 * Bids `sql` + `tables` → `optimised_sql` + `rows` when the request carries SQL and wants either
 * artifact or anything else not already in its input (a downstream step, such as a chart, may
 * derive it from the rows). Declines with the reason otherwise, including SQL that does not parse.
 */
import { defineAgent, type AgentDefinition } from '../../runtime/define-agent';
import { StepError } from '../../runtime/errors';
import type { TaskRequest } from '../../../core/schemas';
import { optimiseSql } from './optimiser';
import { parseTables, runQuery } from './sql-engine';

/** The skill this agent offers. */
export const SKILL = 'sql-optimiser';

/** Artifacts it reads and writes. */
export const CONSUMES = ['sql', 'tables'] as const;
export const PRODUCES = ['optimised_sql', 'rows'] as const;

const PRICE_USD = 0.002;
const P95_MS = 40;

function totalRows(tables: unknown): number {
  if (typeof tables !== 'object' || tables === null) return 0;
  return Object.values(tables).reduce((n: number, rows) => n + (Array.isArray(rows) ? rows.length : 0), 0);
}

/** Why this agent cannot help with `request`, or undefined when it can. */
export function declineReason(request: TaskRequest): string | undefined {
  const { input, want } = request;
  if (typeof input.sql !== 'string') return 'the request input has no sql string';
  if (input.tables === undefined) return 'the request input has no tables to run the SQL over';
  // Anything wanted and not given is either ours or may be derived from our rows downstream.
  if (want.every((w) => w in input)) return 'every wanted artifact is already in the input';
  try {
    optimiseSql(input.sql, parseTables(input.tables));
  } catch (err) {
    return `cannot run this SQL: ${(err as Error).message}`;
  }
  return undefined;
}

/** Builds the sql-optimiser agent for `id`. */
export function createSqlOptimiserAgent(id: string): AgentDefinition {
  return defineAgent({
    id,
    resume: {
      skills: [SKILL],
      cost: { usd: PRICE_USD, p95_ms: P95_MS },
      region: 'eu-central-1',
      accredit: ['ISO27001'],
      name: 'SQL optimiser',
      description: 'Parses, rewrites and runs SELECT statements over JSON tables.',
      version: '1.0.0',
      maxConcurrent: 4,
      skillDetails: [{ id: SKILL, description: 'Optimise a SELECT and run it over JSON rows', tags: ['sql', 'data'] }],
    },
    propose(request) {
      const reason = declineReason(request);
      if (reason !== undefined) return { decline: true, reason };
      return {
        steps: [{ id: 'optimise', skill: SKILL, consumes: [...CONSUMES], produces: [...PRODUCES], estUsd: PRICE_USD, estMs: Math.round(P95_MS + totalRows(request.input.tables) * 0.01) }],
        note: 'rewrites the SELECT, then executes it in-process',
      };
    },
    async execute(assignment, ctx) {
      const { sql, tables } = assignment.inputs;
      if (typeof sql !== 'string' || sql.trim() === '') throw new StepError('invalid-input', 'input sql must be a non-empty string');
      const parsedTables = parseTables(tables);
      const optimised = optimiseSql(sql, parsedTables);
      ctx.progress(0.5, optimised.rewrites.length === 0 ? 'no rewrite applied' : optimised.rewrites.join('; '));
      // Let a pending cancellation (a task status message) be delivered before the query runs.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (ctx.signal.aborted) throw ctx.signal.reason as Error;
      const rows = runQuery(optimised.sql, parsedTables);
      ctx.log.info('query optimised and executed', { rewrites: optimised.rewrites, rows: rows.length });
      ctx.progress(1, `${rows.length} rows`);
      return { optimised_sql: optimised.sql, rows };
    },
  });
}
