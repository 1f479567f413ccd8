/**
 * Natural-language intent + rows → a Vega-Lite spec. The mark and encodings come from the words
 * of the intent ("bar chart of revenue by region") and from the rows' field types; whatever the
 * intent leaves open is filled from the data (first number is the measure, first category or
 * date the dimension).
 */
import type { TopLevelSpec } from 'vega-lite';
import { StepError } from '../../runtime/errors';

/** A row as produced by a query. */
export type ChartRow = Record<string, string | number | boolean | null>;

/** Vega-Lite measurement types this module infers. */
export type FieldType = 'quantitative' | 'temporal' | 'nominal';

/** Marks this module can choose. */
export type ChartMark = 'bar' | 'line' | 'point' | 'area' | 'arc';

/** Aggregations the intent can ask for. */
export type Aggregate = 'sum' | 'mean' | 'max' | 'min' | 'count';

/** What was read from the intent and the data, before it became a spec. */
export interface ChartPlan {
  readonly mark: ChartMark;
  /** The category / time / x field. */
  readonly dimension: string;
  /** The numeric / y field; undefined for a count. */
  readonly measure: string | undefined;
  readonly aggregate: Aggregate | undefined;
  /** Sort of a bar chart's categories: by value descending/ascending, or as the rows come (null). */
  readonly sort: '-y' | 'y' | null;
  readonly fieldTypes: Readonly<Record<string, FieldType>>;
}

/** Most rows charted; beyond this a chart is unreadable and the SVG too big for one message. */
export const MAX_CHART_ROWS = 2000;

const ISO_DATE = /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/;

/** Infers each field's type from its non-null values: all numbers → quantitative, all ISO dates → temporal, else nominal. */
export function inferFieldTypes(rows: readonly ChartRow[]): Record<string, FieldType> {
  const fields = new Map<string, unknown[]>();
  for (const row of rows) for (const [k, v] of Object.entries(row)) if (v !== null) (fields.get(k) ?? fields.set(k, []).get(k))?.push(v);
  const types: Record<string, FieldType> = {};
  for (const row of rows) for (const k of Object.keys(row)) if (!fields.has(k)) fields.set(k, []);
  for (const [field, values] of fields) {
    if (values.length > 0 && values.every((v) => typeof v === 'number')) types[field] = 'quantitative';
    else if (values.length > 0 && values.every((v) => typeof v === 'string' && ISO_DATE.test(v) && !Number.isNaN(Date.parse(v)))) types[field] = 'temporal';
    else types[field] = 'nominal';
  }
  return types;
}

const MARK_WORDS: readonly [RegExp, ChartMark][] = [
  [/\b(pie|donut|doughnut|share|proportion)s?\b/, 'arc'],
  [/\b(scatter|scatterplot|points?|dots?|versus|vs\.?|against|correlation)\b/, 'point'],
  [/\barea\b/, 'area'],
  [/\b(line|trend|timeline|over time)\b/, 'line'],
  [/\b(bar|bars|column|columns|histogram)\b/, 'bar'],
];

const AGGREGATE_WORDS: readonly [RegExp, Aggregate][] = [
  [/\b(average|mean|avg)\b/, 'mean'],
  [/\b(total|sum)\b/, 'sum'],
  [/\b(max|maximum|highest|peak)\b/, 'max'],
  [/\b(min|minimum|lowest)\b/, 'min'],
  [/\b(count|number) of\b/, 'count'],
];

function words(field: string): string {
  return field.toLowerCase().replace(/[_-]+/g, ' ');
}

/** Position of the first mention of `field` in `text`, or -1. */
function mention(text: string, field: string): number {
  const escaped = words(field).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`\\b${escaped}s?\\b`).exec(text);
  return m === null ? -1 : m.index;
}

function mentioned(text: string, fields: readonly string[]): string[] {
  return fields.map((f) => [f, mention(text, f)] as const).filter(([, i]) => i >= 0).sort((a, b) => a[1] - b[1]).map(([f]) => f);
}

/**
 * Reads the intent against the rows' fields.
 * @throws StepError `unchartable` when the rows have no field to put on an axis
 */
export function planChart(intent: string, rows: readonly ChartRow[]): ChartPlan {
  const text = ` ${intent.toLowerCase().replace(/[_-]+/g, ' ')} `;
  const fieldTypes = inferFieldTypes(rows);
  const fields = Object.keys(fieldTypes);
  const numeric = fields.filter((f) => fieldTypes[f] === 'quantitative');
  const categorical = fields.filter((f) => fieldTypes[f] !== 'quantitative');
  if (fields.length === 0) throw new StepError('unchartable', 'the rows have no fields');

  const split = /\b(by|per|over|across|for each|vs\.?|versus|against)\b/.exec(text);
  const head = split === null ? text : text.slice(0, split.index);
  const tail = split === null ? '' : text.slice(split.index + split[0].length);
  let mark = MARK_WORDS.find(([re]) => re.test(text))?.[1];
  const aggregateWord = AGGREGATE_WORDS.find(([re]) => re.test(text))?.[1];

  if (mark === 'point') {
    // "revenue vs cost": the first field named goes on y, the second on x.
    const named = mentioned(text, numeric);
    const yField = named[0] ?? numeric[0];
    const xField = named[1] ?? numeric.find((f) => f !== yField);
    if (yField !== undefined && xField !== undefined) return { mark, dimension: xField, measure: yField, aggregate: undefined, sort: null, fieldTypes };
  }

  const measure = mentioned(head, numeric)[0] ?? mentioned(text, numeric)[0] ?? (aggregateWord === 'count' ? undefined : numeric[0]);
  const dimension = mentioned(tail, fields).find((f) => f !== measure) ?? mentioned(text, categorical)[0] ?? categorical[0] ?? fields.find((f) => f !== measure);
  if (dimension === undefined) throw new StepError('unchartable', `cannot chart a single numeric field (${fields.join(', ')}); a category or date field is needed`);
  if (measure === undefined && aggregateWord !== 'count') throw new StepError('unchartable', `no numeric field to chart among ${fields.join(', ')}; ask for a count instead`);

  mark ??= fieldTypes[dimension] === 'temporal' ? 'line' : fieldTypes[dimension] === 'quantitative' ? 'point' : 'bar';
  const repeats = new Set(rows.map((r) => r[dimension])).size < rows.length;
  const aggregate: Aggregate | undefined = measure === undefined ? 'count' : aggregateWord ?? (repeats && mark !== 'point' ? 'sum' : undefined);
  const sort = mark !== 'bar' ? null : /\b(top|highest|largest|descending|most)\b/.test(text) ? '-y' : /\b(ascending|lowest|smallest|least)\b/.test(text) ? 'y' : null;
  return { mark, dimension, measure, aggregate, sort, fieldTypes };
}

function title(intent: string): string {
  const t = intent.trim();
  return t.length === 0 ? 'Chart' : `${t[0]?.toUpperCase() ?? ''}${t.slice(1)}`;
}

/** Builds the Vega-Lite spec for `plan` with the rows inlined. */
export function buildSpec(intent: string, rows: readonly ChartRow[], plan: ChartPlan): TopLevelSpec {
  const dimType = plan.fieldTypes[plan.dimension] ?? 'nominal';
  const y = plan.measure === undefined
    ? { aggregate: 'count' as const, type: 'quantitative' as const, title: 'count' }
    : { field: plan.measure, type: 'quantitative' as const, ...(plan.aggregate === undefined || plan.aggregate === 'count' ? {} : { aggregate: plan.aggregate }) };
  const base = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: title(intent),
    description: intent,
    data: { values: rows.map((r) => ({ ...r })) },
  };
  if (plan.mark === 'arc') {
    return { ...base, width: 300, height: 300, mark: { type: 'arc', tooltip: true }, encoding: { theta: { ...y, stack: true }, color: { field: plan.dimension, type: 'nominal' } } };
  }
  const x = { field: plan.dimension, type: dimType, ...(plan.mark === 'bar' && dimType === 'nominal' ? { sort: plan.sort ?? null } : {}) };
  return { ...base, width: 400, height: 250, mark: { type: plan.mark, tooltip: true }, encoding: { x, y } };
}

/**
 * Intent + rows → spec, validating the rows first.
 * @throws StepError `invalid-input` for rows that are not a non-empty array of flat objects, `unchartable`
 */
export function specFor(intent: string, rowsInput: unknown): { spec: TopLevelSpec; plan: ChartPlan } {
  if (!Array.isArray(rowsInput) || rowsInput.length === 0) throw new StepError('invalid-input', 'rows must be a non-empty array of objects');
  if (rowsInput.length > MAX_CHART_ROWS) throw new StepError('invalid-input', `rows has ${rowsInput.length} entries; at most ${MAX_CHART_ROWS} can be charted`);
  const rows = rowsInput.map((r: unknown, i) => {
    if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new StepError('invalid-input', `rows[${i}] must be an object`);
    for (const [k, v] of Object.entries(r)) {
      if (v !== null && typeof v === 'object') throw new StepError('invalid-input', `rows[${i}].${k} must be a scalar`);
    }
    return r as ChartRow;
  });
  const plan = planChart(intent, rows);
  return { spec: buildSpec(intent, rows, plan), plan };
}
