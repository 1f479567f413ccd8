import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSqlOptimiserAgent } from '../../../../../agents/examples/sql-optimiser/agent';
import { StepError } from '../../../../../agents/runtime/errors';
import { TaskRequest } from '../../../../../core/schemas';
import { assignmentFor, executeContext, proposeContext, request } from '../helpers';

const demo = TaskRequest.parse(JSON.parse(readFileSync(join(__dirname, '../../../../../agents/examples/demo-request.json'), 'utf8')));
const agent = createSqlOptimiserAgent('sql-1');

describe('sql-optimiser agent', () => {
  describe('résumé', () => {
    it('follows the seed shape with its one skill', () => {
      expect(agent.resume).toMatchObject({ skills: ['sql-optimiser'], cost: { usd: 0.002, p95_ms: 40 }, region: 'eu-central-1', accredit: ['ISO27001'] });
    });
  });

  describe('propose', () => {
    it('bids sql + tables → optimised_sql + rows on the demo request', async () => {
      const p = await agent.propose(demo, proposeContext());
      expect(p).toMatchObject({ steps: [{ skill: 'sql-optimiser', consumes: ['sql', 'tables'], produces: ['optimised_sql', 'rows'] }] });
    });

    it('bids when only a downstream artifact is wanted', async () => {
      const p = await agent.propose(request({ sql: 'SELECT a FROM t', tables: { t: [{ a: 1 }] } }, ['chart_svg']), proposeContext());
      expect('steps' in p).toBe(true);
    });

    it.each([
      [{ tables: {} }, ['rows'], 'the request input has no sql string'],
      [{ sql: 'SELECT a FROM t' }, ['rows'], 'the request input has no tables to run the SQL over'],
      [{ sql: 'SELECT a FROM t', tables: { t: [{ a: 1 }] }, rows: [] }, ['rows'], 'every wanted artifact is already in the input'],
      [{ sql: 'DROP TABLE t', tables: { t: [] } }, ['rows'], 'cannot run this SQL: only SELECT statements can be optimised and run, got DROP'],
    ])('declines input %j wanting %j with "%s"', async (input, want, reason) => {
      expect(await agent.propose(request(input, want), proposeContext())).toEqual({ decline: true, reason });
    });
  });

  describe('execute', () => {
    it('returns the optimised SQL and the real query result for the demo request', async () => {
      const { ctx, progress } = executeContext();
      const out = await agent.execute(assignmentFor('sql-optimiser', { sql: demo.input.sql, tables: demo.input.tables }, ['optimised_sql', 'rows']), ctx);
      expect(out.optimised_sql).toBe('SELECT `sales`.`region`, SUM(`sales`.`amount`) AS `revenue` FROM `sales` GROUP BY `sales`.`region` ORDER BY `revenue` DESC');
      const rows = out.rows as { region: string; revenue: number }[];
      const sales = (demo.input.tables as { sales: { region: string; amount: number }[] }).sales;
      const expected = new Map<string, number>();
      for (const s of sales) expected.set(s.region, (expected.get(s.region) ?? 0) + s.amount);
      expect(rows).toHaveLength(expected.size);
      for (const r of rows) expect(r.revenue).toBe(expected.get(r.region));
      expect(rows.map((r) => r.revenue)).toEqual([...rows.map((r) => r.revenue)].sort((a, b) => b - a));
      expect(progress.at(-1)).toEqual([1, `${rows.length} rows`]);
    });

    it('fails with invalid-input when sql is missing', async () => {
      await expect(agent.execute(assignmentFor('sql-optimiser', { tables: {} }, ['rows']), executeContext().ctx)).rejects.toThrow(new StepError('invalid-input', 'input sql must be a non-empty string'));
    });

    it('stops before running the query when the step was aborted', async () => {
      const controller = new AbortController();
      controller.abort(new Error('task t1 is canceled'));
      await expect(agent.execute(assignmentFor('sql-optimiser', { sql: 'SELECT a FROM t', tables: { t: [{ a: 1 }] } }, ['rows']), executeContext(controller.signal).ctx)).rejects.toThrow('task t1 is canceled');
    });
  });
});
