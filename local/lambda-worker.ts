/**
 * Runs inside a worker thread started by local/function-invoker.ts: one worker is one Lambda
 * execution environment for one function. It imports the handler module once (so module-scope
 * configuration and SDK clients are built once, from the worker's own environment, as at a
 * Lambda cold start) and then serves invocations one message at a time.
 */
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';
import type { Context } from 'aws-lambda';

/** What the parent passes in `workerData`. */
export interface WorkerSetup {
  readonly functionName: string;
  readonly modulePath: string;
  readonly region: string;
  readonly memoryLimitInMB: number;
}

/** An invocation request from the parent. */
export interface InvokeMessage {
  readonly type: 'invoke';
  readonly id: number;
  readonly requestId: string;
  readonly event: unknown;
  /** Epoch ms when the invocation times out (for getRemainingTimeInMillis). */
  readonly deadline: number;
}

/** The worker's answer: the handler's result, or what it threw. */
export type WorkerReply =
  | { readonly type: 'ready' }
  | { readonly type: 'init-error'; readonly error: SerializedError }
  | { readonly type: 'result'; readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly type: 'result'; readonly id: number; readonly ok: false; readonly error: SerializedError };

/** An error reduced to what crosses a thread boundary. */
export interface SerializedError {
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
  readonly code?: string;
}

type Handler = (event: unknown, context: Context) => unknown;

function serialize(err: unknown): SerializedError {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { name: err.name, message: err.message, ...(err.stack !== undefined ? { stack: err.stack } : {}), ...(typeof code === 'string' ? { code } : {}) };
  }
  return { name: 'NonError', message: String(err) };
}

function lambdaContext(setup: WorkerSetup, message: InvokeMessage): Context {
  const unsupported = (): never => {
    throw new Error('callback-style completion (done/fail/succeed) is not supported; return a promise');
  };
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: setup.functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${setup.region}:000000000000:function:${setup.functionName}`,
    memoryLimitInMB: String(setup.memoryLimitInMB),
    awsRequestId: message.requestId,
    logGroupName: `/aws/lambda/${setup.functionName}`,
    logStreamName: `local/[$LATEST]${process.pid}`,
    getRemainingTimeInMillis: () => Math.max(0, message.deadline - Date.now()),
    done: unsupported,
    fail: unsupported,
    succeed: unsupported,
  };
}

/** Values that survive postMessage; anything else (functions, class instances with methods) goes as JSON. */
function transferable(value: unknown): unknown {
  if (value === undefined) return undefined;
  try {
    return structuredClone(value);
  } catch {
    return JSON.parse(JSON.stringify(value)) as unknown;
  }
}

function main(): void {
  const port = parentPort;
  if (port === null) throw new Error('local/lambda-worker.ts must run in a worker thread');
  const setup = workerData as WorkerSetup;
  let handler: Handler;
  try {
    // The handler path is data (chosen by the invoker's resolver), so it is loaded dynamically.
    const loaded = createRequire(__filename)(setup.modulePath) as { handler?: unknown };
    if (typeof loaded.handler !== 'function') throw new Error(`${setup.modulePath} does not export a function named "handler"`);
    handler = loaded.handler as Handler;
  } catch (err) {
    port.postMessage({ type: 'init-error', error: serialize(err) } satisfies WorkerReply);
    return;
  }
  port.on('message', (message: InvokeMessage) => {
    void (async () => {
      let reply: WorkerReply;
      try {
        const value = await handler(message.event, lambdaContext(setup, message));
        reply = { type: 'result', id: message.id, ok: true, value: transferable(value) };
      } catch (err) {
        reply = { type: 'result', id: message.id, ok: false, error: serialize(err) };
      }
      port.postMessage(reply);
    })();
  });
  port.postMessage({ type: 'ready' } satisfies WorkerReply);
}

main();
