import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNl2ChartAgent } from '../../../../../agents/examples/nl2chart/agent';
import { TaskRequest } from '../../../../../core/schemas';
import { assignmentFor, executeContext, proposeContext, request } from '../helpers';

const demo = TaskRequest.parse(JSON.parse(readFileSync(join(__dirname, '../../../../../agents/examples/demo-request.json'), 'utf8')));
const agent = createNl2ChartAgent('chart-1');
const rows = [
  { region: 'us-east', revenue: 5500 },
  { region: 'us-west', revenue: 4000 },
  { region: 'eu-central', revenue: 3050 },
];

describe('nl2chart agent', () => {
  describe('propose', () => {
    it('bids rows + intent → chart_spec + chart_svg on the demo request although rows are not in the input', async () => {
      expect(await agent.propose(demo, proposeContext())).toEqual({
        steps: [{ id: 'chart', skill: 'nl2chart', consumes: ['rows', 'intent'], produces: ['chart_spec', 'chart_svg'], estUsd: 0.003, estMs: 150 }],
        note: undefined,
      });
    });

    it('consumes rows only when the intent must come from the goal', async () => {
      const p = await agent.propose(request({}, ['chart_spec']), proposeContext());
      expect(p).toMatchObject({ steps: [{ consumes: ['rows'] }] });
    });

    it.each([
      [{}, ['rows'], 'wants none of chart_spec, chart_svg'],
      [{ rows: 'x' }, ['chart_svg'], 'input rows is not a non-empty array'],
      [{ intent: 3 }, ['chart_svg'], 'input intent is not a string'],
    ])('declines input %j wanting %j with "%s"', async (input, want, reason) => {
      expect(await agent.propose(request(input, want), proposeContext())).toEqual({ decline: true, reason });
    });
  });

  describe('execute', () => {
    it('renders a real SVG with one bar per row and returns the spec', async () => {
      const { ctx, progress } = executeContext();
      const out = await agent.execute(assignmentFor('nl2chart', { rows, intent: 'bar chart of revenue by region' }, ['chart_spec', 'chart_svg']), ctx);
      const svg = (out.chart_svg as string);
      expect(svg.startsWith('<svg')).toBe(true);
      expect(svg.match(/aria-roledescription="bar"/g)).toHaveLength(rows.length);
      for (const r of rows) expect(svg).toContain(`>${r.region}<`);
      expect(out.chart_spec).toMatchObject({ mark: { type: 'bar' }, encoding: { y: { field: 'revenue' } } });
      expect(progress[0]).toEqual([0.3, 'bar chart of revenue by region']);
    });

    it('takes the intent from the goal when there is no intent input', async () => {
      const out = await agent.execute(assignmentFor('nl2chart', { rows }, ['chart_spec', 'chart_svg'], 'line chart of revenue by region'), executeContext().ctx);
      expect(out.chart_spec).toMatchObject({ mark: { type: 'line' } });
      expect((out.chart_svg as string)).toContain('<svg');
    });

    it('fails with invalid-input for rows that are not objects', async () => {
      await expect(agent.execute(assignmentFor('nl2chart', { rows: [1, 2] }, ['chart_svg']), executeContext().ctx)).rejects.toMatchObject({ code: 'invalid-input', message: 'rows[0] must be an object' });
    });
  });
});
