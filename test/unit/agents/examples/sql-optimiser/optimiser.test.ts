import { optimiseSql, type Tables } from '../../../../../agents/examples/sql-optimiser/optimiser';
import { StepError } from '../../../../../agents/runtime/errors';

const tables: Tables = {
  sales: [
    { region: 'eu', amount: 3 },
    { region: 'us', amount: 5 },
  ],
  regions: [{ region: 'eu', name: 'Europe' }],
};

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof StepError) return `${err.code}: ${err.message}`;
    throw err;
  }
  return 'no error';
}

describe('optimiseSql', () => {
  describe('the demo query', () => {
    it('removes the tautology, qualifies columns and keeps the alias in ORDER BY', () => {
      const out = optimiseSql('SELECT region, SUM(amount) AS revenue FROM sales WHERE 1 = 1 GROUP BY region ORDER BY revenue DESC', tables);
      expect(out.sql).toBe('SELECT `sales`.`region`, SUM(`sales`.`amount`) AS `revenue` FROM `sales` GROUP BY `sales`.`region` ORDER BY `revenue` DESC');
      expect(out.rewrites).toEqual(['WHERE 1 = 1 is always true: removed it', 'qualified 3 column references with their table']);
      expect(out.tables).toEqual(['sales']);
    });
  });

  describe('constant folding', () => {
    it('folds arithmetic and drops true conjuncts', () => {
      const out = optimiseSql('SELECT region FROM sales WHERE amount > 1 + 1 AND 2 > 1', tables);
      expect(out.sql).toBe('SELECT `sales`.`region` FROM `sales` WHERE `sales`.`amount` > 2');
      expect(out.rewrites[0]).toBe('WHERE: folded constants, amount > 1 + 1 AND 2 > 1 → amount > 2');
    });

    it('reduces a contradiction to FALSE and says the query returns no rows', () => {
      const out = optimiseSql("SELECT region FROM sales WHERE 'a' = 'b' AND amount > 0", tables);
      expect(out.sql).toBe('SELECT `sales`.`region` FROM `sales` WHERE FALSE');
      expect(out.rewrites[0]).toMatch(/always false/);
    });

    it('folds NOT over a constant and simplifies a join condition', () => {
      const out = optimiseSql('SELECT s.amount FROM sales s JOIN regions r ON s.region = r.region AND 1 = 1 WHERE NOT (1 = 2)', tables);
      expect(out.sql).toBe('SELECT `s`.`amount` FROM `sales` AS `s` INNER JOIN `regions` AS `r` ON `s`.`region` = `r`.`region`');
      expect(out.rewrites).toHaveLength(2);
    });

    it('leaves a query without constants unchanged apart from qualification', () => {
      const out = optimiseSql('SELECT sales.region FROM sales WHERE sales.amount > 2', tables);
      expect(out.rewrites).toEqual([]);
    });
  });

  describe('redundant DISTINCT', () => {
    it('removes DISTINCT when every GROUP BY key is selected', () => {
      const out = optimiseSql('SELECT DISTINCT region, COUNT(*) AS n FROM sales GROUP BY region', tables);
      expect(out.sql.startsWith('SELECT `sales`.`region`, COUNT(*)')).toBe(true);
      expect(out.rewrites[0]).toBe('removed DISTINCT: GROUP BY region already returns one row per selected group key');
    });

    it('keeps DISTINCT when a group key is not selected', () => {
      const out = optimiseSql('SELECT DISTINCT COUNT(*) AS n FROM sales GROUP BY region', tables);
      expect(out.sql).toContain('DISTINCT');
    });
  });

  describe('predicate push-down', () => {
    it('moves constant comparisons from the outer WHERE into the derived table', () => {
      const out = optimiseSql("SELECT x.region FROM (SELECT region, amount FROM sales) AS x WHERE x.amount >= 4 AND region = 'eu'", tables);
      expect(out.sql).toBe("SELECT `x`.`region` FROM (SELECT `sales`.`region`, `sales`.`amount` FROM `sales` WHERE `sales`.`amount` >= 4 AND `sales`.`region` = 'eu') AS `x`");
      expect(out.rewrites.filter((r) => r.startsWith('pushed'))).toHaveLength(2);
    });

    it('does not push into a grouped derived table', () => {
      const out = optimiseSql('SELECT x.region FROM (SELECT region, SUM(amount) AS total FROM sales GROUP BY region) AS x WHERE x.total > 4', tables);
      expect(out.sql).toContain('WHERE `x`.`total` > 4');
      expect(out.rewrites.some((r) => r.startsWith('pushed'))).toBe(false);
    });
  });

  describe('rejected input', () => {
    it.each([
      ['SELEC region', /^invalid-sql: SQL does not parse/],
      ['DELETE FROM sales', /^unsupported-sql: only SELECT statements can be optimised and run, got DELETE$/],
      ['SELECT 1; SELECT 2', /^unsupported-sql: exactly one statement is allowed, got 2$/],
      ["SELECT * FROM CSV('/etc/passwd')", /^invalid-sql/],
      ['SELECT * FROM other', /^unknown-table: table other is not among the given tables \(sales, regions\)$/],
      ['SELECT nosuch FROM sales', /^unknown-column: column nosuch is not in sales\(region, amount\)$/],
      ['SELECT s.nosuch FROM sales s', /^unknown-column: column nosuch is not in s/],
      ['SELECT region FROM sales s JOIN regions r ON s.region = r.region', /^ambiguous-column: column region is in s and r; qualify it$/],
      ['SELECT MOD(amount, 2) FROM sales', /^unsupported-sql: function MOD is not supported/],
      ['SELECT region FROM sales UNION SELECT region FROM regions', /^unsupported-sql: UNION is not supported$/],
      ['WITH x AS (SELECT 1) SELECT * FROM x', /^unsupported-sql: WITH/],
      ['SELECT q.region FROM sales', /^unknown-table: q.region refers to q/],
    ])('rejects %s with a specific error', (sql, expected) => {
      expect(code(() => optimiseSql(sql, tables))).toMatch(expected);
    });
  });
});
