/**
 * Invoking Porchlight's Lambda handlers locally, the way Lambda would: each function runs in
 * its own worker thread (its own execution environment) with its own copy of the environment
 * and its own module cache, so a handler's module-scope configuration comes from the local
 * stack's variables, and two stacks in one process (two tests in one file) never share a
 * handler wired to the other's ports.
 */
import { randomUUID } from 'node:crypto';
import type { WriteStream } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { FUNCTION_NAMES, handlerEntry, type FunctionName } from '../infra/rules/catalogue';
import type { InvokeMessage, SerializedError, WorkerReply, WorkerSetup } from './lambda-worker';

/** Invokes functions by name. */
export interface FunctionInvoker {
  /** Runs the function's handler with `event`; resolves with its result, rejects with what it threw. */
  invoke(functionName: string, event: unknown): Promise<unknown>;
  /** Starts the execution environments of `functionNames` now (a cold start that fails is reported here). */
  warm(functionNames: readonly string[]): Promise<void>;
  /** Terminates every execution environment. */
  close(): Promise<void>;
}

/** Maps a function name to the module exporting its `handler`. */
export type HandlerResolver = (functionName: string) => string;

/** The real handlers: `functions/<name>/handler.ts`. */
export const defaultHandlerResolver: HandlerResolver = (functionName) => {
  if (!(FUNCTION_NAMES as readonly string[]).includes(functionName)) throw new Error(`unknown function "${functionName}"; expected one of ${FUNCTION_NAMES.join(', ')}`);
  return handlerEntry(functionName as FunctionName);
};

/** The handler threw (or its module failed to load); `name`, `message` and `stack` are the original's. */
export class FunctionError extends Error {
  readonly code: string | undefined;
  constructor(readonly functionName: string, error: SerializedError, readonly phase: 'init' | 'invoke') {
    super(`${functionName} ${phase === 'init' ? 'failed to initialise' : 'failed'}: ${error.name}: ${error.message}`);
    this.name = 'FunctionError';
    this.code = error.code;
    if (error.stack !== undefined) this.stack = `${this.name}: ${this.message}\n--- in the function ---\n${error.stack}`;
  }
}

/** The invocation ran longer than the function's timeout. */
export class FunctionTimeoutError extends Error {
  constructor(readonly functionName: string, readonly timeoutMs: number) {
    super(`${functionName} timed out after ${timeoutMs} ms`);
    this.name = 'FunctionTimeoutError';
  }
}

/** Options for {@link createWorkerInvoker}. */
export interface WorkerInvokerOptions {
  /** The environment every function sees (process.env is not inherited). */
  readonly env: Readonly<Record<string, string>>;
  /** @default defaultHandlerResolver */
  readonly resolve?: HandlerResolver;
  /** Per-invocation timeout, like the Lambda function timeout. @default 30000 */
  readonly timeoutMs?: number;
  /** Receives the functions' stdout and stderr (Powertools JSON logs, EMF metrics); inherited when absent. */
  readonly output?: WriteStream;
  /**
   * Each function's own AWS credentials, set as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in its
   * environment as Lambda sets its role's: the local shims tell the callers apart by them.
   * @default the credentials in `env`, shared by every function
   */
  readonly credentials?: (functionName: string) => { readonly accessKeyId: string; readonly secretAccessKey: string };
}

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** One execution environment. */
class Environment {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  readonly ready: Promise<void>;
  dead = false;

  constructor(private readonly functionName: string, modulePath: string, options: WorkerInvokerOptions) {
    const setup: WorkerSetup = { functionName, modulePath, region: options.env.AWS_REGION ?? 'us-east-1', memoryLimitInMB: 512 };
    const tsx = require.resolve('tsx/cjs/api');
    const workerModule = join(__dirname, 'lambda-worker.ts');
    // The worker is plain Node: it registers tsx first so it can load TypeScript, whether the
    // parent runs under tsx (npm start) or under jest's own transformer.
    const bootstrap = `require(${JSON.stringify(tsx)}).register();require(${JSON.stringify(workerModule)});`;
    const credentials = options.credentials?.(functionName);
    this.worker = new Worker(bootstrap, {
      eval: true,
      workerData: setup,
      env: {
        ...options.env,
        ...(credentials !== undefined ? { AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey } : {}),
        AWS_LAMBDA_FUNCTION_NAME: functionName,
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '512',
      },
      stdout: options.output !== undefined,
      stderr: options.output !== undefined,
    });
    if (options.output !== undefined) {
      this.worker.stdout.pipe(options.output, { end: false });
      this.worker.stderr.pipe(options.output, { end: false });
    }
    this.ready = new Promise<void>((resolve, reject) => {
      const onMessage = (reply: WorkerReply): void => {
        if (reply.type === 'ready') resolve();
        else if (reply.type === 'init-error') {
          this.dead = true;
          reject(new FunctionError(functionName, reply.error, 'init'));
          void this.worker.terminate();
        } else this.settle(reply);
      };
      this.worker.on('message', onMessage);
      this.worker.on('error', (err) => {
        this.dead = true;
        reject(err);
        this.failAll(new FunctionError(functionName, { name: err.name, message: err.message, ...(err.stack !== undefined ? { stack: err.stack } : {}) }, 'invoke'));
      });
      this.worker.on('exit', (code) => {
        this.dead = true;
        reject(new Error(`${functionName}'s execution environment exited (code ${code}) before it was ready`));
        this.failAll(new Error(`${functionName}'s execution environment exited (code ${code})`));
      });
    });
    // Callers observe init failures through invoke()/warm(); this keeps an unobserved one quiet.
    this.ready.catch(() => undefined);
  }

  private settle(reply: Extract<WorkerReply, { type: 'result' }>): void {
    const entry = this.pending.get(reply.id);
    if (entry === undefined) return;
    this.pending.delete(reply.id);
    clearTimeout(entry.timer);
    if (reply.ok) entry.resolve(reply.value);
    else entry.reject(new FunctionError(this.functionName, reply.error, 'invoke'));
  }

  private failAll(err: Error): void {
    for (const [id, entry] of this.pending) {
      clearTimeout(entry.timer);
      entry.reject(err);
      this.pending.delete(id);
    }
  }

  async invoke(event: unknown, timeoutMs: number): Promise<unknown> {
    await this.ready;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new FunctionTimeoutError(this.functionName, timeoutMs));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      const message: InvokeMessage = { type: 'invoke', id, requestId: randomUUID(), event, deadline: Date.now() + timeoutMs };
      this.worker.postMessage(message);
    });
  }

  async terminate(): Promise<void> {
    this.dead = true;
    this.failAll(new Error(`${this.functionName}'s execution environment was shut down`));
    await this.worker.terminate();
  }
}

/**
 * An invoker running each function in its own worker thread, started on first use (a cold
 * start) and replaced after it crashes or fails to initialise.
 */
export function createWorkerInvoker(options: WorkerInvokerOptions): FunctionInvoker {
  const resolve = options.resolve ?? defaultHandlerResolver;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const environments = new Map<string, Environment>();
  let closed = false;

  const environment = (functionName: string): Environment => {
    if (closed) throw new Error(`cannot invoke ${functionName}: the invoker is closed`);
    const existing = environments.get(functionName);
    if (existing !== undefined && !existing.dead) return existing;
    const created = new Environment(functionName, resolve(functionName), options);
    environments.set(functionName, created);
    return created;
  };

  return {
    invoke: async (functionName, event) => environment(functionName).invoke(event, timeoutMs),
    warm: async (functionNames) => {
      await Promise.all(functionNames.map((name) => environment(name).ready));
    },
    close: async () => {
      closed = true;
      await Promise.all([...environments.values()].map((env) => env.terminate()));
      environments.clear();
    },
  };
}

/** A handler called in this thread (unit tests of the rules engine and the queue shim). */
export type InProcessHandler = (event: unknown, context: { readonly functionName: string; readonly awsRequestId: string }) => unknown;

/** An invoker calling plain functions in this thread; no isolation, no environment of its own. */
export function createInProcessInvoker(handlers: Readonly<Record<string, InProcessHandler>>): FunctionInvoker {
  return {
    invoke: async (functionName, event) => {
      const handler = handlers[functionName];
      if (handler === undefined) throw new Error(`no handler registered for function "${functionName}"`);
      return await handler(event, { functionName, awsRequestId: randomUUID() });
    },
    warm: (functionNames) => {
      const missing = functionNames.filter((n) => handlers[n] === undefined);
      return missing.length > 0 ? Promise.reject(new Error(`no handler registered for ${missing.join(', ')}`)) : Promise.resolve();
    },
    close: () => Promise.resolve(),
  };
}
