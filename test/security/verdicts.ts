/**
 * What both runners share: the matrix's own consistency checks, and how an observed verdict is
 * judged against a row's expectation and {@link KNOWN_OPEN}.
 */
import { ROLES } from '../../core/policy';
import { topicMatches } from '../../core/topics';
import {
  FUNCTION_ROWS,
  IDENTITIES,
  KNOWN_OPEN,
  PROBE_POOLS,
  ROWS,
  functionRowKey,
  rowKey,
  type Broker,
  type FunctionProbeRow,
  type KnownOpen,
  type ProbeRow,
} from './probe-matrix';

/** A verdict a runner observed, with evidence for failure messages. */
export interface Observed {
  readonly verdict: 'allow' | 'deny';
  readonly detail: string;
}

/** The verdict a row must get on `broker` today, and the known-open entry that says so, if any. */
export function requiredVerdict(row: ProbeRow | FunctionProbeRow, broker: Broker, known: readonly KnownOpen[] = KNOWN_OPEN): { verdict: 'allow' | 'deny'; open?: KnownOpen } {
  const key = 'fn' in row ? functionRowKey(row) : rowKey(row);
  const open = known.find((k) => k.on.includes(broker) && (typeof k.rows === 'function' ? !('fn' in row) && k.rows(row) : k.rows.includes(key)));
  if (open === undefined) return { verdict: row.expect };
  return { verdict: row.expect === 'allow' ? 'deny' : 'allow', open };
}

/**
 * Null when `observed` is what the row must get on `broker`; otherwise a message saying whether
 * the model regressed or a known-open entry can be removed.
 */
export function judge(row: ProbeRow | FunctionProbeRow, broker: Broker, observed: Observed, known: readonly KnownOpen[] = KNOWN_OPEN): string | null {
  const key = 'fn' in row ? functionRowKey(row) : rowKey(row);
  const required = requiredVerdict(row, broker, known);
  if (observed.verdict === required.verdict) return null;
  if (required.open !== undefined) {
    return `${key}: now ${observed.verdict} on ${broker} as expected (${row.why}); the known-open entry "${required.open.name}" is fixed here: remove this row from it in test/security/probe-matrix.ts`;
  }
  return `${key}: expected ${row.expect} on ${broker} (${row.why}), got ${observed.verdict}: ${observed.detail}`;
}

/** True when `topic` matches the MQTT filter (a `$share/<group>/` prefix is ignored). */
export function mqttMatches(filter: string, topic: string): boolean {
  return topicMatches(filter.startsWith('$share/') ? filter.split('/').slice(2).join('/') : filter, topic);
}

/** Problems with the matrix itself (unknown identities, duplicate keys, stale known-open keys, …). */
export function matrixProblems(): string[] {
  const problems: string[] = [];
  const keys = new Set<string>();
  for (const identity of Object.values(IDENTITIES)) {
    if (!(ROLES as readonly string[]).includes(identity.role)) problems.push(`identity ${identity.id} has unknown role ${identity.role}`);
    for (const pool of identity.pools ?? []) {
      if (identity.role !== 'agent') problems.push(`identity ${identity.id} is a ${identity.role}; only agents can be pool members`);
      if (!PROBE_POOLS.includes(pool)) problems.push(`identity ${identity.id} is in pool ${pool}, which is not one of PROBE_POOLS (the deployment would have no group for it)`);
    }
  }
  for (const row of ROWS) {
    const key = rowKey(row);
    if (keys.has(key)) problems.push(`duplicate row ${key}`);
    keys.add(key);
    if (IDENTITIES[row.identity] === undefined) problems.push(`${key}: unknown identity ${row.identity}`);
    if (row.action === 'connect' && IDENTITIES[row.target] === undefined) problems.push(`${key}: a connect row's client id must be one of the identities, whose session it tries to take over`);
    if (row.action !== 'receive' && row.via !== undefined) problems.push(`${key}: only receive rows take a filter (via)`);
    if (row.action !== 'publish-retained' && row.empty) problems.push(`${key}: only publish-retained rows can be empty`);
    if ((row.action === 'publish' || row.action === 'publish-retained' || row.action === 'receive') && /[+#]/.test(row.target)) problems.push(`${key}: the target must be a topic, not a filter`);
    if (row.action === 'receive' && !mqttMatches(row.via ?? row.target, row.target)) problems.push(`${key}: the filter does not match the topic`);
  }
  for (const row of FUNCTION_ROWS) {
    const key = functionRowKey(row);
    if (keys.has(key)) problems.push(`duplicate row ${key}`);
    keys.add(key);
  }
  for (const entry of KNOWN_OPEN) {
    if (typeof entry.rows === 'function') {
      if (!ROWS.some(entry.rows)) problems.push(`known-open "${entry.name}" matches no row`);
      continue;
    }
    for (const key of entry.rows) if (!keys.has(key)) problems.push(`known-open "${entry.name}" names ${key}, which is not a row`);
  }
  return problems;
}
