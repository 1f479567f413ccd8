import type { ExecuteContext, ProposeContext } from '../../../../agents/runtime/define-agent';
import type { AgentLogger } from '../../../../agents/runtime/logger';
import { Assignment, Resume, TaskRequest } from '../../../../core/schemas';

export const silentLog: AgentLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, child: () => silentLog };

export function proposeContext(taskId = 't1'): ProposeContext {
  return { agentId: 'a1', taskId, taskRoot: 'tasks', resume: Resume.parse({ skills: ['x'], cost: { usd: 0, p95_ms: 0 }, region: 'r' }), log: silentLog };
}

export function executeContext(signal = new AbortController().signal, attempt: { idempotencyKey?: string; resumed?: boolean } = {}) {
  const progress: [number, string | undefined][] = [];
  const ctx: ExecuteContext = {
    agentId: 'a1', taskRoot: 'tasks', signal, log: silentLog, progress: (f, m) => progress.push([f, m]), charge: () => undefined,
    idempotencyKey: attempt.idempotencyKey ?? 'key-t1-s1-1', resumed: attempt.resumed ?? false,
  };
  return { ctx, progress };
}

export function request(input: Record<string, unknown>, want: string[]): TaskRequest {
  return TaskRequest.parse({ goal: 'chart revenue by region', input, want });
}

export function assignmentFor(skill: string, inputs: Record<string, unknown>, produces: string[], goal = 'chart revenue by region'): Assignment {
  return Assignment.parse({ taskId: 't1', stepId: 's1', epoch: 1, token: 'token-0123456789abcdef', skill, goal, inputs, produces, deadline: new Date(Date.now() + 60_000).toISOString(), leaseMs: 30_000 });
}
