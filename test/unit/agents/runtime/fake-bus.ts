import type { InboundMessage, MqttBus, PublishOptions, SubscribeOutcome } from '../../../../agents/runtime/mqtt-bus';
import type { AgentLogger, LogFields } from '../../../../agents/runtime/logger';

/** One publish the agent made. */
export interface Published {
  topic: string;
  payload: string;
  qos: 0 | 1;
  retain: boolean;
}

/** An in-memory MqttBus: records what the agent does and delivers what a test sends. */
export class FakeBus implements MqttBus {
  readonly published: Published[] = [];
  readonly subscribed: string[] = [];
  readonly unsubscribed: string[] = [];
  /** Filters the broker refuses, with the reason name. */
  readonly refuse = new Map<string, string>();
  /** Topics whose publishes fail (e.g. a missing PUBACK). */
  readonly failPublish = new Set<string>();
  stopCalls = 0;
  private handler: (m: InboundMessage) => void = () => undefined;
  private reconnect: () => void = () => undefined;

  async publish(topic: string, payload: string, options: PublishOptions): Promise<void> {
    if (this.failPublish.has(topic)) throw new Error(`publish to ${topic} refused: NotAuthorized`);
    this.published.push({ topic, payload, qos: options.qos, retain: options.retain ?? false });
  }

  async subscribe(filters: readonly string[]): Promise<SubscribeOutcome[]> {
    return filters.map((filter) => {
      const reason = this.refuse.get(filter);
      if (reason === undefined) this.subscribed.push(filter);
      return { filter, ok: reason === undefined, reasonCode: reason === undefined ? 1 : 0x87, reason: reason ?? 'GrantedQoS1' };
    });
  }

  async unsubscribe(filters: readonly string[]): Promise<void> {
    this.unsubscribed.push(...filters);
  }

  onMessage(handler: (m: InboundMessage) => void): void {
    this.handler = handler;
  }

  onReconnect(handler: () => void): void {
    this.reconnect = handler;
  }

  async stop(): Promise<void> {
    this.stopCalls += 1;
  }

  /** Delivers a message as the broker would. */
  deliver(topic: string, payload: unknown, retain = false): void {
    const text = typeof payload === 'string' ? payload : JSON.stringify(payload);
    this.handler({ topic, payload: new TextEncoder().encode(text), retain });
  }

  simulateReconnect(): void {
    this.reconnect();
  }

  on(topic: string): Published[] {
    return this.published.filter((p) => p.topic === topic);
  }

  json(topic: string): unknown[] {
    return this.on(topic).map((p) => JSON.parse(p.payload));
  }
}

/** A logger that keeps every line for assertions. */
export function captureLogger(): AgentLogger & { lines: { level: string; message: string; fields: LogFields }[] } {
  const lines: { level: string; message: string; fields: LogFields }[] = [];
  const make = (base: LogFields): AgentLogger => ({
    debug: (message, fields) => lines.push({ level: 'debug', message, fields: { ...base, ...fields } }),
    info: (message, fields) => lines.push({ level: 'info', message, fields: { ...base, ...fields } }),
    warn: (message, fields) => lines.push({ level: 'warn', message, fields: { ...base, ...fields } }),
    error: (message, fields) => lines.push({ level: 'error', message, fields: { ...base, ...fields } }),
    child: (fields) => make({ ...base, ...fields }),
  });
  return Object.assign(make({}), { lines });
}

/** Polls until `check` passes or fails after `timeoutMs`. */
export async function eventually(check: () => void, timeoutMs = 2000): Promise<void> {
  const start = Date.now();
  for (;;) {
    try {
      check();
      return;
    } catch (err) {
      if (Date.now() - start > timeoutMs) throw err;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}
