import { inferFieldTypes, planChart, specFor } from '../../../../../agents/examples/nl2chart/chart-spec';
import { StepError } from '../../../../../agents/runtime/errors';

const revenue = [
  { region: 'us-east', revenue: 5500 },
  { region: 'eu-west', revenue: 2550 },
];
const daily = [
  { day: '2024-01-01', visits: 10, signups: 1 },
  { day: '2024-01-02', visits: 14, signups: 3 },
];

describe('inferFieldTypes', () => {
  describe('mixed rows', () => {
    it('classifies numbers as quantitative, ISO dates as temporal and the rest as nominal', () => {
      expect(inferFieldTypes([{ a: 1, d: '2024-02-03', s: 'x', n: null }, { a: 2, d: '2024-02-04T10:00:00Z', s: 3, n: null }])).toEqual({ a: 'quantitative', d: 'temporal', s: 'nominal', n: 'nominal' });
    });
  });
});

describe('planChart', () => {
  describe('the demo intent', () => {
    it('reads a bar chart of revenue by region in row order', () => {
      expect(planChart('bar chart of revenue by region', revenue)).toMatchObject({ mark: 'bar', measure: 'revenue', dimension: 'region', aggregate: undefined, sort: null });
    });
  });

  describe('other intents', () => {
    it('picks a line for a time dimension when no mark is named', () => {
      expect(planChart('visits by day', daily)).toMatchObject({ mark: 'line', measure: 'visits', dimension: 'day' });
    });

    it('reads "signups vs visits" as a scatter with signups on y', () => {
      expect(planChart('signups vs visits', daily)).toMatchObject({ mark: 'point', measure: 'signups', dimension: 'visits' });
    });

    it('sums a measure when the dimension repeats and reads "top" as a descending sort', () => {
      const rows = [{ region: 'eu', amount: 1 }, { region: 'eu', amount: 2 }, { region: 'us', amount: 5 }];
      expect(planChart('top regions by amount as bars', rows)).toMatchObject({ mark: 'bar', aggregate: 'sum', sort: '-y', measure: 'amount', dimension: 'region' });
    });

    it('uses the named aggregate and a pie for shares', () => {
      expect(planChart('share of average revenue per region', revenue)).toMatchObject({ mark: 'arc', aggregate: 'mean' });
    });

    it('counts rows when asked for a number of things and no numeric field exists', () => {
      expect(planChart('number of orders by status', [{ status: 'open' }, { status: 'done' }])).toMatchObject({ measure: undefined, aggregate: 'count', dimension: 'status' });
    });
  });

  describe('unchartable rows', () => {
    it('fails with unchartable when there is no numeric field and no count is asked', () => {
      expect(() => planChart('chart of status', [{ status: 'open' }])).toThrow(new StepError('unchartable', 'no numeric field to chart among status; ask for a count instead'));
    });
  });
});

describe('specFor', () => {
  describe('valid rows', () => {
    it('builds a Vega-Lite v5 bar spec with the rows inlined and encodings from the intent', () => {
      const { spec } = specFor('bar chart of revenue by region', revenue);
      expect(spec).toMatchObject({
        $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
        title: 'Bar chart of revenue by region',
        data: { values: revenue },
        mark: { type: 'bar' },
        encoding: { x: { field: 'region', type: 'nominal', sort: null }, y: { field: 'revenue', type: 'quantitative' } },
      });
    });
  });

  describe('invalid rows', () => {
    it.each([
      [undefined, 'rows must be a non-empty array of objects'],
      [[], 'rows must be a non-empty array of objects'],
      [[1], 'rows[0] must be an object'],
      [[{ a: { b: 1 } }], 'rows[0].a must be a scalar'],
    ])('rejects %j with "%s"', (rows, message) => {
      expect(() => specFor('bar chart', rows)).toThrow(message);
    });
  });
});
