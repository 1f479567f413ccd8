/**
 * `porchlight submit <file.json>` and `porchlight watch <taskId>`: a client's view of tasks.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../../core/errors';
import { validateId } from '../../core/topics';
import type { TaskEvent } from '../client';
import { eventLine, planTable, resultSummary } from '../render';
import { connectCliClient } from '../session';
import { readStackFile } from '../stack-file';

interface TaskCommandOptions {
  readonly stateDir: string;
  readonly timeoutMs: number;
  readonly out?: (line: string) => void;
}

function printer(out: (line: string) => void): (e: TaskEvent) => void {
  let planShown = false;
  return (e) => {
    if (e.type === 'status' && !planShown && e.status.plan) {
      planShown = true;
      out(planTable(e.status));
    }
    out(eventLine(e));
  };
}

/** Submits the request in `file`, waits for the result and prints it. Exit code 0 only if completed. */
export async function submit(file: string, options: TaskCommandOptions): Promise<number> {
  const out = options.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  let request: unknown;
  try {
    request = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`cannot read a task request from ${file}: ${(err as Error).message}`);
  }
  const client = await connectCliClient(readStackFile(options.stateDir));
  try {
    const task = await client.submit(request);
    out(`submitted task ${task.taskId}`);
    const result = await client.watch(task.taskId, printer(out), { taskRoot: task.taskRoot, timeoutMs: options.timeoutMs });
    out(resultSummary(result));
    return result.state === 'completed' ? 0 : 1;
  } finally {
    await client.close();
  }
}

/** Watches an existing task until it finishes. */
export async function watch(taskId: string, options: TaskCommandOptions & { taskRoot: string }): Promise<number> {
  const out = options.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  validateId('taskId', taskId);
  const client = await connectCliClient(readStackFile(options.stateDir));
  try {
    const result = await client.watch(taskId, printer(out), { taskRoot: options.taskRoot, timeoutMs: options.timeoutMs });
    out(resultSummary(result));
    return result.state === 'completed' ? 0 : 1;
  } finally {
    await client.close();
  }
}
