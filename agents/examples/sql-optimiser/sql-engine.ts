/**
 * Runs an already-optimised, allow-listed SELECT over JSON tables with alasql, an in-JS SQL
 * engine, in a private database that is discarded afterwards.
 */
import alasql from 'alasql';
import { StepError } from '../../runtime/errors';
import type { Row, Tables } from './optimiser';

/** Most rows a table may have, and most cells across all tables: the step's memory stays bounded. */
export const LIMITS = { rowsPerTable: 50_000, cells: 1_000_000 } as const;

const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function isCell(value: unknown): value is string | number | boolean | null {
  return value === null || typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
}

/**
 * Checks that `value` is `{ tableName: [ { column: scalar } ] }`.
 * @throws StepError `invalid-input` naming the table, row and column at fault
 */
export function parseTables(value: unknown): Tables {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new StepError('invalid-input', 'tables must be an object mapping table names to arrays of rows');
  const tables: Record<string, Row[]> = {};
  let cells = 0;
  for (const [name, rows] of Object.entries(value)) {
    if (!TABLE_NAME.test(name)) throw new StepError('invalid-input', `table name ${JSON.stringify(name)} must be a plain identifier`);
    if (!Array.isArray(rows)) throw new StepError('invalid-input', `table ${name} must be an array of rows`);
    if (rows.length > LIMITS.rowsPerTable) throw new StepError('invalid-input', `table ${name} has ${rows.length} rows; at most ${LIMITS.rowsPerTable} are allowed`);
    tables[name] = rows.map((row: unknown, i) => {
      if (typeof row !== 'object' || row === null || Array.isArray(row)) throw new StepError('invalid-input', `table ${name} row ${i} must be an object`);
      for (const [col, cell] of Object.entries(row)) {
        if (!isCell(cell)) throw new StepError('invalid-input', `table ${name} row ${i} column ${col} must be a string, finite number, boolean or null`);
        cells += 1;
      }
      return row as Row;
    });
    if (cells > LIMITS.cells) throw new StepError('invalid-input', `tables hold more than ${LIMITS.cells} cells`);
  }
  return tables;
}

/**
 * Executes `sql` over `tables` and returns JSON-safe rows (undefined cells become null).
 * @throws StepError `query-failed` with the engine's message
 */
export function runQuery(sql: string, tables: Tables): Row[] {
  const db = new alasql.Database();
  try {
    for (const [name, rows] of Object.entries(tables)) {
      db.exec(`CREATE TABLE \`${name}\``);
      // Copies, so the engine never mutates the caller's input.
      (db.tables[name] as { data: Row[] }).data = rows.map((r) => ({ ...r }));
    }
    const result: unknown = db.exec(sql);
    if (!Array.isArray(result)) throw new StepError('query-failed', 'the query did not return rows');
    return result.map((row: unknown) => {
      const out: Row = {};
      for (const [k, v] of Object.entries(row as Record<string, unknown>)) out[k] = isCell(v) ? v : v === undefined ? null : JSON.stringify(v);
      return out;
    });
  } catch (err) {
    if (err instanceof StepError) throw err;
    throw new StepError('query-failed', `query failed: ${(err as Error).message}`);
  } finally {
    // alasql registers every Database globally; forget this one or a long-running agent leaks.
    const registry = alasql.databases as unknown as Record<string, unknown>;
    delete registry[db.databaseid];
  }
}
