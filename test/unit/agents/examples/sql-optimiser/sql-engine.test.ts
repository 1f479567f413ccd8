import { parseTables, runQuery } from '../../../../../agents/examples/sql-optimiser/sql-engine';
import alasql from 'alasql';

const tables = { sales: [{ region: 'eu', amount: 3 }, { region: 'us', amount: 5 }, { region: 'eu', amount: 4 }] };

describe('parseTables', () => {
  describe('valid tables', () => {
    it('returns them unchanged', () => {
      expect(parseTables(tables)).toEqual(tables);
    });
  });

  describe('invalid tables', () => {
    it.each([
      [[], 'tables must be an object mapping table names to arrays of rows'],
      [{ 'a-b': [] }, 'table name "a-b" must be a plain identifier'],
      [{ t: {} }, 'table t must be an array of rows'],
      [{ t: [1] }, 'table t row 0 must be an object'],
      [{ t: [{ a: { nested: 1 } }] }, 'table t row 0 column a must be a string, finite number, boolean or null'],
    ])('rejects %j with "%s"', (value, message) => {
      expect(() => parseTables(value)).toThrow(message);
    });
  });
});

describe('runQuery', () => {
  describe('an aggregate query', () => {
    it('computes grouped sums in order', () => {
      expect(runQuery('SELECT `sales`.`region`, SUM(`sales`.`amount`) AS `revenue` FROM `sales` GROUP BY `sales`.`region` ORDER BY `revenue` DESC', tables)).toEqual([
        { region: 'eu', revenue: 7 },
        { region: 'us', revenue: 5 },
      ]);
    });
  });

  describe('isolation', () => {
    it('does not mutate the input and leaves no database registered', () => {
      const before = Object.keys(alasql.databases).length;
      const input = { sales: [{ region: 'eu', amount: 3 }] };
      runQuery('SELECT `sales`.`region` FROM `sales`', input);
      expect(input).toEqual({ sales: [{ region: 'eu', amount: 3 }] });
      expect(Object.keys(alasql.databases)).toHaveLength(before);
    });
  });

  describe('engine errors', () => {
    it('reports query-failed with the engine message', () => {
      expect(() => runQuery('SELECT * FROM `missing`', tables)).toThrow(/^query failed: Table does not exist: missing$/);
    });
  });
});
