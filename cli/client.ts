/**
 * PorchlightClient: what a client application does over MQTT — submit a task, watch its status,
 * collect its result, cancel it. Authenticated with the client's own X.509 certificate.
 *
 * Its tasks live on its own tree, `clients/{clientId}/{root}/{taskId}/…`: it submits and cancels
 * there, and reads the status, result, outputs and progress the orchestrator republishes there.
 * It watches a task through the exact status and result topics, never a wildcard, because AWS IoT
 * Core only delivers retained messages to exact-topic subscriptions.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import { topics } from '../core/topics';
import { sha256 } from '../functions/adapters/system';
import { taskRootFor } from '../core/data-classes';
import {
  AcceptedOutput, decodePayload, parseMessage, Progress, TaskRequest, TaskResult, TaskStatus,
  type TaskRequest as TaskRequestT, type TaskResult as TaskResultT, type TaskStatus as TaskStatusT,
} from '../core/schemas';
import { isTerminal } from '../core/model';

/** Where and as whom to connect. */
export interface ClientConnection {
  readonly host: string;
  readonly port: number;
  readonly caPath: string;
  readonly certPath: string;
  readonly keyPath: string;
  /** MQTT client id; must equal the certificate's identity. */
  readonly clientId: string;
}

/** Something that happened to a watched task. */
export type TaskEvent =
  | { readonly type: 'status'; readonly status: TaskStatusT }
  | { readonly type: 'progress'; readonly stepId: string; readonly fraction?: number; readonly message?: string }
  | { readonly type: 'output'; readonly stepId: string; readonly ok: boolean; readonly detail: string }
  | { readonly type: 'result'; readonly result: TaskResultT };

/** A submitted task: its id, the secret that can cancel it, and its topic root. */
export interface SubmittedTask {
  readonly taskId: string;
  readonly taskRoot: string;
  /** Keep this to cancel the task; only its SHA-256 went on the wire. */
  readonly cancelSecret: string;
}

/** Raised when a watched task does not finish in time. */
export class WatchTimeoutError extends Error {
  constructor(readonly taskId: string, readonly lastStatus: TaskStatusT | undefined, timeoutMs: number) {
    super(`task ${taskId} did not finish within ${timeoutMs} ms (last state: ${lastStatus ? `${lastStatus.state}/${lastStatus.phase}` : 'no status seen'})`);
    this.name = 'WatchTimeoutError';
  }
}

/** How long `watch` waits, after the result, for the final status snapshot. */
const FINAL_STATUS_GRACE_MS = 1000;

/** An MQTT 5 client for submitting and watching tasks. */
export class PorchlightClient {
  /** `clientId` is the identity the broker knows this client by: its tasks live under `clients/{clientId}/`. */
  private constructor(private readonly mqtt: MqttClient, readonly clientId: string) {}

  /** Connects with mutual TLS; rejects with the broker's reason if the connection is refused. */
  static async connect(conn: ClientConnection, timeoutMs = 10_000): Promise<PorchlightClient> {
    const client = mqtt.connect({
      protocol: 'mqtts',
      host: conn.host,
      port: conn.port,
      ca: readFileSync(conn.caPath),
      cert: readFileSync(conn.certPath),
      key: readFileSync(conn.keyPath),
      clientId: conn.clientId,
      protocolVersion: 5,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: timeoutMs,
      rejectUnauthorized: true,
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        client.end(true);
        reject(new Error(`could not connect to mqtts://${conn.host}:${conn.port} within ${timeoutMs} ms`));
      }, timeoutMs);
      client.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      client.once('error', (err) => {
        clearTimeout(timer);
        client.end(true);
        reject(new Error(`connection to mqtts://${conn.host}:${conn.port} refused: ${err.message}`, { cause: err }));
      });
    });
    // After connecting, an error is reported per operation; keep the process alive and quiet.
    client.on('error', () => undefined);
    return new PorchlightClient(client, conn.clientId);
  }

  /**
   * Publishes a task request (QoS 1). The request is validated locally first, so a mistake in a
   * request file is reported before anything is sent.
   */
  async submit(request: unknown, taskId: string = randomUUID()): Promise<SubmittedTask> {
    const cancelSecret = randomBytes(24).toString('base64url');
    const parsed: TaskRequestT = parseMessage(
      TaskRequest,
      { ...(request as object), cancelHash: sha256(cancelSecret) },
      'task request',
    );
    const taskRoot = taskRootFor(parsed.constraints.dataClasses);
    await this.publish(topics.clientRequest(this.clientId, taskId, taskRoot), JSON.stringify(parsed));
    return { taskId, taskRoot, cancelSecret };
  }

  /** Asks the orchestrator to cancel a task; only the submitter's secret works. */
  async cancel(task: SubmittedTask, reason?: string): Promise<void> {
    await this.publish(topics.clientCancel(this.clientId, task.taskId, task.taskRoot), JSON.stringify({ v: 1, secret: task.cancelSecret, reason }));
  }

  /**
   * Watches a task until its result arrives (or `timeoutMs` passes), calling `onEvent` for every
   * status snapshot, progress message and step output. Subscribing before submitting is not
   * needed: status and result are retained.
   */
  async watch(taskId: string, onEvent: (e: TaskEvent) => void, opts: { taskRoot?: string; timeoutMs?: number } = {}): Promise<TaskResultT> {
    const taskRoot = opts.taskRoot ?? 'tasks';
    const timeoutMs = opts.timeoutMs ?? 120_000;
    const statusTopic = topics.clientStatus(this.clientId, taskId, taskRoot);
    const resultTopic = topics.clientResult(this.clientId, taskId, taskRoot);
    const stepTopic = (kind: 'progress' | 'output'): string => `${statusTopic.slice(0, -'status'.length)}${kind}/`;
    const progressFilter = `${stepTopic('progress')}+`;
    const outputFilter = `${stepTopic('output')}+`;
    let lastStatus: TaskStatusT | undefined;
    let finalResult: TaskResultT | undefined;
    let graceTimer: NodeJS.Timeout | undefined;

    return new Promise<TaskResultT>((resolve, reject) => {
      let finished = false;
      const finish = (err: Error | undefined, result?: TaskResultT): void => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        clearTimeout(graceTimer);
        this.mqtt.removeListener('message', onMessage);
        this.mqtt.unsubscribe([statusTopic, resultTopic, progressFilter, outputFilter]);
        if (err) reject(err);
        else resolve(result as TaskResultT);
      };
      const timer = setTimeout(() => finish(new WatchTimeoutError(taskId, lastStatus, timeoutMs)), timeoutMs);
      const onMessage = (topic: string, payload: Buffer): void => {
        if (payload.length === 0) return; // a cleared retained topic
        try {
          if (topic === statusTopic) {
            const status = decodePayload(TaskStatus, payload, 'task status');
            // QoS 1 may redeliver out of order: never go back to an older snapshot.
            if (lastStatus && status.version < lastStatus.version) return;
            lastStatus = status;
            onEvent({ type: 'status', status });
            if (finalResult && isTerminal(status.state)) finish(undefined, finalResult);
          } else if (topic === resultTopic) {
            const result = decodePayload(TaskResult, payload, 'task result');
            onEvent({ type: 'result', result });
            // The final status is published with the result; give it a moment so the caller's
            // last snapshot shows every step finished, but never wait long for it.
            finalResult = result;
            if (lastStatus && isTerminal(lastStatus.state)) finish(undefined, result);
            else graceTimer ??= setTimeout(() => finish(undefined, result), FINAL_STATUS_GRACE_MS);
          } else if (topic.startsWith(stepTopic('progress'))) {
            const p = decodePayload(Progress, payload, 'progress');
            onEvent({ type: 'progress', stepId: p.stepId, fraction: p.fraction, message: p.message });
          } else if (topic.startsWith(stepTopic('output'))) {
            const o = decodePayload(AcceptedOutput, payload, 'step output');
            const detail = o.ok ? `produced ${Object.keys(o.output).join(', ')}` : `${o.error.code}: ${o.error.message}`;
            onEvent({ type: 'output', stepId: o.stepId, ok: o.ok, detail });
          }
        } catch {
          // A malformed message on a task topic is not ours to fix; the orchestrator reports it.
        }
      };
      this.mqtt.on('message', onMessage);
      this.mqtt.subscribe(
        { [statusTopic]: { qos: 1 }, [resultTopic]: { qos: 1 }, [progressFilter]: { qos: 0 }, [outputFilter]: { qos: 1 } },
        (err, granted) => {
          if (err) return finish(new Error(`subscribe failed: ${err.message}`, { cause: err }));
          const refused = (granted ?? []).filter((g) => g.qos >= 0x80);
          if (refused.length > 0) finish(new Error(`not authorised to watch ${refused.map((g) => g.topic).join(', ')}`));
        },
      );
    });
  }

  /** Closes the connection. */
  async close(): Promise<void> {
    await this.mqtt.endAsync();
  }

  private async publish(topic: string, payload: string): Promise<void> {
    const packet = await this.mqtt.publishAsync(topic, payload, { qos: 1 });
    // MQTT 5: a PUBACK with a reason code >= 0x80 is a refusal, not a success.
    const reasonCode = (packet as { reasonCode?: number } | undefined)?.reasonCode ?? 0;
    if (reasonCode >= 0x80) throw new Error(`broker refused publish to ${topic} (reason code 0x${reasonCode.toString(16)})`);
  }
}
