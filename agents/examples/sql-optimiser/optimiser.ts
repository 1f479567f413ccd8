/**
 * A rule-based SQL optimiser over node-sql-parser's AST (MySQL dialect).
 *
 * It accepts exactly one SELECT over the tables it is given and nothing else: the statement is
 * later run in-process, and an allow-list of node types, functions and table sources is what
 * keeps a request from reading files (alasql's `FROM CSV('/etc/…')`) or running code.
 *
 * Rewrites, each recorded in `rewrites` with the reason:
 * 1. constant folding of predicates (`1 = 1` → TRUE, `x > 1 + 1` → `x > 2`), dropping a WHERE/
 *    HAVING/ON that is always true;
 * 2. removal of DISTINCT when GROUP BY already makes rows unique (all group keys selected);
 * 3. push-down of constant comparisons from an outer WHERE into a derived table's WHERE;
 * 4. qualification of every column reference with its table, after checking that it exists.
 */
import { Parser } from 'node-sql-parser';
import { StepError } from '../../runtime/errors';

/** A row of a table given as JSON. */
export type Row = Record<string, string | number | boolean | null>;

/** Tables by name. */
export type Tables = Record<string, readonly Row[]>;

/** The optimiser's result. */
export interface OptimisedQuery {
  /** The rewritten statement (MySQL dialect with back-quoted identifiers). */
  readonly sql: string;
  /** What was changed and why, in order. */
  readonly rewrites: readonly string[];
  /** Tables the statement reads. */
  readonly tables: readonly string[];
}

type Node = { [key: string]: unknown };

const DIALECT = { database: 'mysql' } as const;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

const ALLOWED_NODE_TYPES = new Set([
  'select', 'column_ref', 'aggr_func', 'function', 'binary_expr', 'unary_expr', 'number', 'single_quote_string',
  'double_quote_string', 'string', 'bool', 'boolean', 'null', 'expr_list', 'case', 'when', 'else', 'star', 'cast',
  'default', 'ASC', 'DESC', 'datatype',
]);
const ALLOWED_AGGREGATES = new Set(['SUM', 'AVG', 'COUNT', 'MIN', 'MAX']);
const ALLOWED_FUNCTIONS = new Set([
  'ABS', 'ROUND', 'FLOOR', 'CEIL', 'CEILING', 'SQRT', 'POWER', 'UPPER', 'LOWER', 'LENGTH', 'SUBSTRING', 'TRIM',
  'CONCAT', 'COALESCE', 'IFNULL', 'YEAR', 'NOT', 'EXISTS',
]);
const COMPARISONS = new Set(['=', '!=', '<>', '<', '>', '<=', '>=']);
const ARITHMETIC = new Set(['+', '-', '*', '/']);
const PUSHABLE = new Set([...COMPARISONS, 'IN', 'NOT IN', 'LIKE', 'NOT LIKE', 'BETWEEN', 'NOT BETWEEN', 'IS', 'IS NOT']);
const JOIN_KINDS = /^(INNER |LEFT |RIGHT |LEFT OUTER |RIGHT OUTER |CROSS )?JOIN$/;

function isNode(value: unknown): value is Node {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function unsupported(message: string): StepError {
  return new StepError('unsupported-sql', message);
}

function nodesOf(value: unknown): Node[] {
  return Array.isArray(value) ? value.filter(isNode) : [];
}

function functionName(node: Node): string {
  const name = node.name;
  if (typeof name === 'string') return name.toUpperCase();
  if (isNode(name) && Array.isArray(name.name)) {
    return name.name.map((part) => (isNode(part) && typeof part.value === 'string' ? part.value : '')).join('.').toUpperCase();
  }
  return '';
}

function columnName(ref: Node): string {
  const col = ref.column;
  if (typeof col === 'string') return col;
  if (isNode(col) && isNode(col.expr) && typeof col.expr.value === 'string') return col.expr.value;
  return '';
}

function isSelect(value: unknown): value is Node {
  return isNode(value) && value.type === 'select';
}

/** A derived-table or expression subquery: `{ ast: select }` as node-sql-parser writes it. */
function subqueryOf(value: Node): Node | undefined {
  return isSelect(value.ast) ? value.ast : undefined;
}

// ---------------------------------------------------------------------------------------------
// Parsing and allow-listing

function parseOne(sql: string): Node {
  let ast: unknown;
  try {
    ast = new Parser().astify(sql, DIALECT);
  } catch (err) {
    throw new StepError('invalid-sql', `SQL does not parse: ${(err as Error).message}`);
  }
  const statements: unknown[] = Array.isArray(ast) ? (ast as unknown[]) : [ast];
  if (statements.length !== 1) throw unsupported(`exactly one statement is allowed, got ${statements.length}`);
  const [statement] = statements;
  if (!isNode(statement) || statement.type !== 'select') {
    throw unsupported(`only SELECT statements can be optimised and run, got ${isNode(statement) ? String(statement.type).toUpperCase() : 'nothing'}`);
  }
  return statement;
}

function checkSelect(select: Node, tables: Tables): void {
  if (select.with !== null && select.with !== undefined) throw unsupported('WITH (common table expressions) is not supported');
  if (isNode(select.into) && (select.into.position ?? null) !== null) throw unsupported('SELECT … INTO is not allowed');
  if (select._next !== undefined && select._next !== null) throw unsupported(`${typeof select.set_op === 'string' ? select.set_op.toUpperCase() : 'set operation'} is not supported`);
  for (const item of nodesOf(select.from)) {
    if (typeof item.table === 'string') {
      if (item.db !== null && item.db !== undefined) throw unsupported(`database-qualified table ${JSON.stringify(item.db)}.${item.table} is not allowed`);
      if (!Object.prototype.hasOwnProperty.call(tables, item.table)) {
        throw new StepError('unknown-table', `table ${item.table} is not among the given tables (${Object.keys(tables).join(', ') || 'none'})`);
      }
    } else if (!isNode(item.expr) || subqueryOf(item.expr) === undefined) {
      throw unsupported('only tables and subqueries may appear in FROM');
    }
    if (typeof item.as === 'string' && !IDENTIFIER.test(item.as)) throw unsupported(`alias ${JSON.stringify(item.as)} must be a plain identifier`);
    if (typeof item.join === 'string' && !JOIN_KINDS.test(item.join)) throw unsupported(`${item.join} is not supported`);
    if (item.using !== undefined && item.using !== null) throw unsupported('JOIN … USING is not supported; use ON');
  }
  if (select.from !== null && select.from !== undefined && !Array.isArray(select.from)) throw unsupported('this FROM clause is not supported');
}

/** Walks every node, enforcing the allow-lists; nested SELECTs get the FROM checks too. */
function allowList(value: unknown, tables: Tables): void {
  if (Array.isArray(value)) {
    for (const v of value) allowList(v, tables);
    return;
  }
  if (!isNode(value)) return;
  if (typeof value.type === 'string') {
    if (!ALLOWED_NODE_TYPES.has(value.type)) throw unsupported(`${value.type.replace(/_/g, ' ')} is not supported`);
    if (value.type === 'select') checkSelect(value, tables);
    if (value.type === 'aggr_func' && !ALLOWED_AGGREGATES.has(functionName(value))) throw unsupported(`aggregate ${functionName(value)} is not supported`);
    if (value.type === 'function' && !ALLOWED_FUNCTIONS.has(functionName(value))) {
      throw unsupported(`function ${functionName(value)} is not supported (allowed: ${[...ALLOWED_FUNCTIONS].join(', ')})`);
    }
    if (value.type === 'column_ref') {
      const name = columnName(value);
      if (name !== '*' && !IDENTIFIER.test(name)) throw unsupported(`column ${JSON.stringify(name)} must be a plain identifier`);
    }
    if (value.over !== undefined && value.over !== null) throw unsupported('window functions (OVER) are not supported');
  }
  for (const [key, child] of Object.entries(value)) {
    // `name` holds function-name parts; `tableList`/`columnList` are parser metadata.
    if (key === 'name' || key === 'tableList' || key === 'columnList' || key === 'loc') continue;
    allowList(child, tables);
  }
}

// ---------------------------------------------------------------------------------------------
// Constant folding

type Literal = { kind: 'number'; value: number } | { kind: 'string'; value: string } | { kind: 'bool'; value: boolean };

function literalOf(node: unknown): Literal | undefined {
  if (!isNode(node)) return undefined;
  if (node.type === 'number' && typeof node.value === 'number') return { kind: 'number', value: node.value };
  if ((node.type === 'single_quote_string' || node.type === 'string') && typeof node.value === 'string') return { kind: 'string', value: node.value };
  if ((node.type === 'bool' || node.type === 'boolean') && typeof node.value === 'boolean') return { kind: 'bool', value: node.value };
  return undefined;
}

const bool = (value: boolean): Node => ({ type: 'bool', value });
const isBool = (node: unknown, value: boolean): boolean => {
  const lit = literalOf(node);
  return lit?.kind === 'bool' && lit.value === value;
};

function compare(op: string, a: number | string, b: number | string): boolean {
  switch (op) {
    case '=': return a === b;
    case '!=': case '<>': return a !== b;
    case '<': return a < b;
    case '>': return a > b;
    case '<=': return a <= b;
    default: return a >= b;
  }
}

/** Folds constant sub-expressions of `node`; returns the same object when nothing changed. */
function fold(node: unknown): unknown {
  if (!isNode(node)) return node;
  if (node.type === 'binary_expr' && typeof node.operator === 'string') {
    const left = fold(node.left);
    const right = fold(node.right);
    const op = node.operator.toUpperCase();
    if (op === 'AND') {
      if (isBool(left, false) || isBool(right, false)) return bool(false);
      if (isBool(left, true)) return right;
      if (isBool(right, true)) return left;
    } else if (op === 'OR') {
      if (isBool(left, true) || isBool(right, true)) return bool(true);
      if (isBool(left, false)) return right;
      if (isBool(right, false)) return left;
    } else {
      const a = literalOf(left);
      const b = literalOf(right);
      if (a !== undefined && b !== undefined && a.kind === b.kind && a.kind !== 'bool' && COMPARISONS.has(op)) return bool(compare(op, a.value, b.value as typeof a.value));
      if (a?.kind === 'number' && b?.kind === 'number' && ARITHMETIC.has(op) && !(op === '/' && b.value === 0)) {
        const value = op === '+' ? a.value + b.value : op === '-' ? a.value - b.value : op === '*' ? a.value * b.value : a.value / b.value;
        return { type: 'number', value };
      }
    }
    return left === node.left && right === node.right ? node : { ...node, left, right };
  }
  if ((node.type === 'unary_expr' && String(node.operator).toUpperCase() === 'NOT') || (node.type === 'function' && functionName(node) === 'NOT')) {
    const inner = node.type === 'unary_expr' ? fold(node.expr) : fold(isNode(node.args) && Array.isArray(node.args.value) ? node.args.value[0] : undefined);
    const lit = literalOf(inner);
    if (lit?.kind === 'bool') return bool(!lit.value);
    return node;
  }
  return node;
}

const parser = new Parser();

/** SQL text of one expression, for the rewrite log. */
function exprSql(expr: unknown): string {
  const text = parser.sqlify({ type: 'select', with: null, options: null, distinct: null, columns: [{ expr, as: null }], from: null, where: null, groupby: null, having: null, orderby: null, limit: null } as never, DIALECT);
  return text.replace(/^SELECT /, '').replace(/`/g, '');
}

function foldClause(holder: Node, key: string, label: string, rewrites: string[]): void {
  const before = holder[key];
  if (!isNode(before)) return;
  const after = fold(before);
  if (after === before) return;
  if (isBool(after, true)) {
    holder[key] = null;
    rewrites.push(`${label} ${exprSql(before)} is always true: removed it`);
  } else if (isBool(after, false)) {
    holder[key] = after;
    rewrites.push(`${label} ${exprSql(before)} is always false: the query returns no rows`);
  } else {
    holder[key] = after;
    rewrites.push(`${label}: folded constants, ${exprSql(before)} → ${exprSql(after)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// DISTINCT under GROUP BY

function groupKeys(select: Node): Node[] | undefined {
  const g = select.groupby;
  if (Array.isArray(g)) return g.filter(isNode);
  if (isNode(g) && Array.isArray(g.columns)) return g.columns.filter(isNode);
  return undefined;
}

function removeRedundantDistinct(select: Node, rewrites: string[]): void {
  const distinct = isNode(select.distinct) ? select.distinct.type : select.distinct;
  if (distinct !== 'DISTINCT') return;
  const keys = groupKeys(select);
  if (keys === undefined || keys.length === 0) return;
  const selected = new Set(nodesOf(select.columns).map((c) => (isNode(c.expr) && c.expr.type === 'column_ref' ? columnName(c.expr) : undefined)));
  const keyNames = keys.map((k) => (k.type === 'column_ref' ? columnName(k) : undefined));
  if (keyNames.every((k) => k !== undefined && selected.has(k))) {
    select.distinct = null;
    rewrites.push(`removed DISTINCT: GROUP BY ${keyNames.join(', ')} already returns one row per selected group key`);
  }
}

// ---------------------------------------------------------------------------------------------
// Predicate push-down into a derived table

function conjuncts(expr: unknown): unknown[] {
  if (isNode(expr) && expr.type === 'binary_expr' && String(expr.operator).toUpperCase() === 'AND' && expr.parentheses !== true) {
    return [...conjuncts(expr.left), ...conjuncts(expr.right)];
  }
  return expr === null || expr === undefined ? [] : [expr];
}

function andAll(parts: unknown[]): Node | null {
  const [first, ...rest] = parts;
  if (first === undefined) return null;
  return rest.reduce<Node>((acc, p) => ({ type: 'binary_expr', operator: 'AND', left: acc, right: p }), first as Node);
}

function isConstant(node: unknown): boolean {
  if (literalOf(node) !== undefined) return true;
  if (isNode(node) && node.type === 'null') return true;
  if (isNode(node) && node.type === 'expr_list' && Array.isArray(node.value)) return node.value.every(isConstant);
  return false;
}

function hasAggregate(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(hasAggregate);
  if (!isNode(value)) return false;
  if (value.type === 'aggr_func') return true;
  return Object.values(value).some(hasAggregate);
}

function pushDown(select: Node, rewrites: string[]): void {
  const from = nodesOf(select.from);
  const [only] = from;
  if (from.length !== 1 || only === undefined || !isNode(only.expr)) return;
  const inner = subqueryOf(only.expr);
  if (inner === undefined || typeof only.as !== 'string') return;
  const alias = only.as;
  const blocked = (groupKeys(inner)?.length ?? 0) > 0 || inner.distinct !== null || (inner.limit !== null && isNode(inner.limit) && nodesOf(inner.limit.value).length > 0) || hasAggregate(inner.columns) || nodesOf(inner.from).length !== 1;
  if (blocked) return;
  const outputs = new Map<string, Node>();
  for (const c of nodesOf(inner.columns)) {
    if (!isNode(c.expr) || c.expr.type !== 'column_ref') continue;
    const name = typeof c.as === 'string' ? c.as : columnName(c.expr);
    if (name !== '*') outputs.set(name, c.expr);
  }
  const keep: unknown[] = [];
  const pushed: unknown[] = [];
  for (const part of conjuncts(select.where)) {
    const target = isNode(part) && part.type === 'binary_expr' && PUSHABLE.has(String(part.operator).toUpperCase()) && isNode(part.left) && part.left.type === 'column_ref' && (part.left.table === null || part.left.table === alias) && isConstant(part.right)
      ? outputs.get(columnName(part.left))
      : undefined;
    if (target === undefined || !isNode(part)) {
      keep.push(part);
      continue;
    }
    pushed.push({ ...part, left: { ...target } });
    rewrites.push(`pushed ${exprSql(part)} down into subquery ${alias}, so it filters before the outer query`);
  }
  if (pushed.length === 0) return;
  select.where = andAll(keep);
  inner.where = andAll([...conjuncts(inner.where), ...pushed]);
}

// ---------------------------------------------------------------------------------------------
// Column resolution and qualification

interface Scope {
  /** alias or table name → its columns, or undefined when unknown (e.g. an empty table). */
  readonly sources: Map<string, Set<string> | undefined>;
  /** Output aliases of the SELECT list (visible in ORDER BY and HAVING). */
  readonly aliases: Set<string>;
  readonly parent: Scope | undefined;
}

function columnsOfRows(rows: readonly Row[]): Set<string> | undefined {
  if (rows.length === 0) return undefined;
  const cols = new Set<string>();
  for (const r of rows) for (const k of Object.keys(r)) cols.add(k);
  return cols;
}

function outputColumns(select: Node, tables: Tables): Set<string> | undefined {
  const out = new Set<string>();
  for (const c of nodesOf(select.columns)) {
    if (typeof c.as === 'string') out.add(c.as);
    else if (isNode(c.expr) && c.expr.type === 'column_ref') {
      const name = columnName(c.expr);
      if (name !== '*') out.add(name);
      else {
        for (const item of nodesOf(select.from)) {
          const cols = typeof item.table === 'string' ? columnsOfRows(tables[item.table] ?? []) : undefined;
          if (cols === undefined) return undefined;
          for (const col of cols) out.add(col);
        }
      }
    } else return undefined;
  }
  return out;
}

function scopeOf(select: Node, tables: Tables, parent: Scope | undefined): Scope {
  const sources = new Map<string, Set<string> | undefined>();
  for (const item of nodesOf(select.from)) {
    const name = typeof item.as === 'string' ? item.as : typeof item.table === 'string' ? item.table : undefined;
    if (name === undefined) continue;
    if (typeof item.table === 'string') sources.set(name, columnsOfRows(tables[item.table] ?? []));
    else {
      const inner = isNode(item.expr) ? subqueryOf(item.expr) : undefined;
      sources.set(name, inner === undefined ? undefined : outputColumns(inner, tables));
    }
  }
  const aliases = new Set(nodesOf(select.columns).map((c) => c.as).filter((a): a is string => typeof a === 'string'));
  return { sources, aliases, parent };
}

function describeSources(scope: Scope): string {
  return [...scope.sources].map(([name, cols]) => `${name}(${cols === undefined ? '?' : [...cols].join(', ')})`).join(', ');
}

/** Resolves one column reference in `scope` (and outer scopes), qualifying it in place. Returns true when it qualified it. */
function resolve(ref: Node, scope: Scope, aliasesVisible: boolean): boolean {
  const name = columnName(ref);
  if (name === '*' || name === '') return false;
  if (typeof ref.table === 'string') {
    for (let s: Scope | undefined = scope; s !== undefined; s = s.parent) {
      if (!s.sources.has(ref.table)) continue;
      const cols = s.sources.get(ref.table);
      if (cols !== undefined && !cols.has(name)) throw new StepError('unknown-column', `column ${name} is not in ${ref.table} (it has ${[...cols].join(', ')})`);
      return false;
    }
    throw new StepError('unknown-table', `${ref.table}.${name} refers to ${ref.table}, which is not in FROM`);
  }
  if (aliasesVisible && scope.aliases.has(name)) return false;
  for (let s: Scope | undefined = scope; s !== undefined; s = s.parent) {
    const owners = [...s.sources].filter(([, cols]) => cols === undefined || cols.has(name));
    const known = owners.filter(([, cols]) => cols !== undefined);
    if (known.length > 1) throw new StepError('ambiguous-column', `column ${name} is in ${known.map(([n]) => n).join(' and ')}; qualify it`);
    if (owners.length === 1 && known.length === 1) {
      const [[owner]] = known as [[string, Set<string>]];
      if (s !== scope) return false; // a correlated reference: leave it as written
      ref.table = owner;
      return true;
    }
    if (owners.length > 0) return false; // an unknown-column source (empty table, derived table with *) may hold it
  }
  if (scope.aliases.has(name)) throw new StepError('unknown-column', `column ${name} is an output alias and cannot be used here`);
  throw new StepError('unknown-column', `column ${name} is not in ${describeSources(scope) || 'any table'}`);
}

/** Resolves the column references of one expression tree, stopping at nested SELECTs (they get their own scope). */
function resolveExpr(value: unknown, scope: Scope, aliasesVisible: boolean, tables: Tables, counter: { n: number }): void {
  if (Array.isArray(value)) {
    for (const v of value) resolveExpr(v, scope, aliasesVisible, tables, counter);
    return;
  }
  if (!isNode(value)) return;
  const nested = isSelect(value) ? value : subqueryOf(value);
  if (nested !== undefined) {
    resolveSelect(nested, tables, scope, counter);
    return;
  }
  if (value.type === 'column_ref') {
    if (resolve(value, scope, aliasesVisible)) counter.n += 1;
    return;
  }
  for (const [key, child] of Object.entries(value)) {
    if (key === 'name' || key === 'tableList' || key === 'columnList' || key === 'loc') continue;
    resolveExpr(child, scope, aliasesVisible, tables, counter);
  }
}

function resolveSelect(select: Node, tables: Tables, parent: Scope | undefined, counter: { n: number }): void {
  for (const item of nodesOf(select.from)) {
    const inner = isNode(item.expr) ? subqueryOf(item.expr) : undefined;
    if (inner !== undefined) resolveSelect(inner, tables, parent, counter);
  }
  const scope = scopeOf(select, tables, parent);
  for (const item of nodesOf(select.from)) resolveExpr(item.on, scope, false, tables, counter);
  resolveExpr(nodesOf(select.columns).map((c) => c.expr), scope, false, tables, counter);
  resolveExpr(select.where, scope, false, tables, counter);
  resolveExpr(groupKeys(select), scope, true, tables, counter);
  resolveExpr(select.having, scope, true, tables, counter);
  resolveExpr(nodesOf(select.orderby).map((o) => o.expr), scope, true, tables, counter);
}

function eachSelect(select: Node, visit: (s: Node) => void): void {
  visit(select);
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) return value.forEach(walk);
    if (!isNode(value)) return;
    const nested = isSelect(value) ? value : subqueryOf(value);
    if (nested !== undefined && nested !== select) return eachSelect(nested, visit);
    for (const [key, child] of Object.entries(value)) if (key !== 'tableList' && key !== 'columnList') walk(child);
  };
  for (const [key, child] of Object.entries(select)) if (key !== 'tableList' && key !== 'columnList') walk(child);
}

// ---------------------------------------------------------------------------------------------

/**
 * Parses, checks and rewrites one SELECT over `tables`.
 * @throws StepError `invalid-sql` (does not parse), `unsupported-sql` (not a plain SELECT over the
 *   given tables, or a construct outside the allow-list), `unknown-table`, `unknown-column`,
 *   `ambiguous-column`
 */
export function optimiseSql(sql: string, tables: Tables): OptimisedQuery {
  const select = parseOne(sql);
  allowList(select, tables);
  const rewrites: string[] = [];
  const read = new Set<string>();
  eachSelect(select, (s) => {
    foldClause(s, 'where', 'WHERE', rewrites);
    foldClause(s, 'having', 'HAVING', rewrites);
    for (const item of nodesOf(s.from)) {
      foldClause(item, 'on', 'JOIN … ON', rewrites);
      if (typeof item.table === 'string') read.add(item.table);
    }
    removeRedundantDistinct(s, rewrites);
    pushDown(s, rewrites);
  });
  const counter = { n: 0 };
  resolveSelect(select, tables, undefined, counter);
  if (counter.n > 0) rewrites.push(`qualified ${counter.n} column reference${counter.n === 1 ? '' : 's'} with ${counter.n === 1 ? 'its' : 'their'} table`);
  return { sql: parser.sqlify(select as never, DIALECT), rewrites, tables: [...read].sort() };
}
