/**
 * Plain-text rendering for the `porchlight` command: tables and one-line events. No colours, so
 * the output reads the same in a terminal, a CI log and a file.
 */
import { reputationOf } from '../core/reputation';
import type { AgentRecord } from '../core/model';
import type { TaskResult, TaskStatus } from '../core/schemas';
import type { TaskEvent } from './client';

/** Renders rows as an aligned text table with a header and a rule under it. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** The registry as a table, best-known figures first (telemetry over résumé claims). */
export function agentsTable(agents: readonly AgentRecord[]): string {
  if (agents.length === 0) return 'no agents registered';
  const rows = [...agents]
    .sort((a, b) => a.agentId.localeCompare(b.agentId))
    .map((a) => {
      const rep = reputationOf(a.measured);
      const has = rep.steps > 0;
      return [
        a.agentId,
        a.state,
        a.resume.skills.join(','),
        `$${a.resume.cost.usd.toFixed(4)}`,
        rep.meanUsd !== undefined ? `$${rep.meanUsd.toFixed(4)}` : '-',
        `${Math.round(a.resume.cost.p95_ms)}ms`,
        rep.p50Ms !== undefined && rep.p95Ms !== undefined ? `${rep.p50Ms}/${rep.p95Ms}ms` : '-',
        has ? `${(rep.successRate! * 100).toFixed(0)}% of ${rep.steps}` : '-',
        has ? `$×${ratio(rep.usdRatio)} ms×${ratio(rep.msRatio)}` : '-',
        a.resume.region,
        a.verifiedAccredit.join(',') || '-',
        a.unverifiedAccredit.length > 0 ? a.unverifiedAccredit.join(',') : '-',
        a.load ? `${a.load.active}/${a.load.max}` : '-',
      ];
    });
  const text = table(
    ['agent', 'state', 'skills', 'cost claimed', 'cost measured', 'p95 claimed', 'p50/p95 measured', 'success', 'actual/bid', 'region', 'accredited', 'unverified', 'load'],
    rows,
  );
  return `${text}\n(claimed: the résumé; measured: the orchestrator's own clock and the usage of the outputs it accepted; actual/bid: 1 = bids are right)`;
}

function ratio(x: number | undefined): string {
  return x === undefined ? '-' : x.toFixed(2);
}

/** The plan in a task status as a table: one row per step with its state and agent. */
export function planTable(status: TaskStatus): string {
  if (!status.plan) return '(no plan yet)';
  const rows = status.plan.steps.map((s) => [
    s.id,
    s.skill,
    s.consumes.join(',') || '-',
    s.produces.join(','),
    s.agentId ?? s.pool ?? '-',
    s.proposedBy,
    s.state,
    String(s.epoch),
    `$${s.estUsd.toFixed(4)}`,
    `${Math.round(s.estMs)}ms`,
  ]);
  const summary = `plan: ${status.plan.steps.length} steps, est. $${status.plan.estUsd.toFixed(4)}, critical path ${Math.round(status.plan.estMs)} ms`;
  return `${summary}\n${table(['step', 'skill', 'consumes', 'produces', 'agent', 'proposed by', 'state', 'epoch', 'est $', 'est ms'], rows)}`;
}

/** One line per task event, for `watch` and `demo`. */
export function eventLine(e: TaskEvent): string {
  switch (e.type) {
    case 'status': {
      const errors = e.status.errors.map((x) => `${x.code}: ${x.message}`).join('; ');
      const waiting = e.status.waitingForBids !== undefined
        ? ` — no plan yet, waiting for bids from ${e.status.waitingForBids.agents.join(', ')} (${e.status.waitingForBids.reasons.join('; ')})`
        : '';
      return `status  ${e.status.state}/${e.status.phase} (v${e.status.version})${waiting}${errors ? ` — ${errors}` : ''}`;
    }
    case 'progress':
      return `progress ${e.stepId}${e.fraction !== undefined ? ` ${Math.round(e.fraction * 100)}%` : ''}${e.message ? ` ${e.message}` : ''}`;
    case 'output':
      return `output  ${e.stepId} ${e.ok ? 'ok' : 'failed'}: ${e.detail}`;
    case 'result':
      return `result  ${e.result.state}${e.result.reason ? ` — ${e.result.reason}` : ''}`;
  }
}

/** A result summary: usage, and each output abbreviated so an SVG does not flood the terminal. */
export function resultSummary(result: TaskResult, maxChars = 400): string {
  const lines = [`task ${result.taskId}: ${result.state}${result.reason ? ` — ${result.reason}` : ''}`];
  lines.push(`usage: $${result.usage.usd.toFixed(4)}, ${Math.round(result.usage.ms)} ms of agent time, ${result.usage.steps} steps`);
  for (const [name, value] of Object.entries(result.outputs)) {
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    lines.push(`${name}: ${text.length > maxChars ? `${text.slice(0, maxChars)}… (${text.length} chars)` : text}`);
  }
  return lines.join('\n');
}
