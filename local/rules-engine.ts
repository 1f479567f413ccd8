/**
 * The local stand-in for the AWS IoT Rules engine. It reads the same rule catalogue as CDK
 * (infra/rules/catalogue.ts), subscribes to each rule's filter through a shared subscription as
 * the orchestrator identity, builds the event the rule's SQL would select, and invokes the
 * rule's function with async-Lambda semantics: two retries with backoff, then the error
 * destination. It also runs the sweeper on a fixed interval, as the EventBridge schedule does.
 *
 * A message is acknowledged (PUBACK) only once its rule invocations have finished, retries
 * included, or it has gone to the error destination: until then the broker keeps it in the
 * orchestrator's persistent session, so a process that dies mid-handler gets it again when it
 * connects again (see local/puback-gate.ts).
 *
 * Differences from IoT Core, by necessity: Mosquitto does not tell a subscriber who published,
 * so events carry no `clientId`; rules marked `awsOnly` (lifecycle events) are skipped.
 */
import type { IConnackPacket, IPublishPacket, MqttClient } from 'mqtt';
import type { RuleEvent } from '../core/rule-event';
import { topicMatches } from '../core/topics';
import { RULES, type RuleDefinition } from '../infra/rules/catalogue';
import type { DeadLetterSink } from './dead-letters';
import { checkRate, seededRandom, type RandomSource } from './fault-injection';
import type { FunctionInvoker } from './function-invoker';
import { silentLog, type StackLog } from './log';
import { pubackGate, type MessageBacklog, type PubackGate, type PubackRelease } from './puback-gate';

/** The shared-subscription group every rules engine instance joins (instances share the load). */
export const RULES_SHARE_GROUP = 'porchlight-rules';

/** Options for {@link startRulesEngine}. */
export interface RulesEngineOptions {
  /** A connected MQTT 5 client authenticated as the orchestrator identity; not closed by stop(). */
  readonly mqtt: MqttClient;
  readonly invoker: FunctionInvoker;
  readonly deadLetters: DeadLetterSink;
  /** @default RULES from the catalogue */
  readonly rules?: readonly RuleDefinition[];
  /** Delays before each retry; its length is the retry count. @default [1000, 2000] (Lambda async: 2 retries) */
  readonly retryDelaysMs?: readonly number[];
  /** Invocations in flight at once across all keys. @default 8 */
  readonly concurrency?: number;
  /** Sweeper schedule; `false` turns it off. @default { functionName: 'sweeper', intervalMs: 10000 } */
  readonly sweeper?: { readonly functionName: string; readonly intervalMs: number } | false;
  /**
   * Shared-subscription group, so several engine instances share the load; `false` subscribes
   * to the plain filters (one instance). @default RULES_SHARE_GROUP
   */
  readonly shareGroup?: string | false;
  /** @default Date.now */
  readonly now?: () => number;
  /**
   * Test-only fault injection: the fraction of messages whose rule invocations run a second time
   * with the same event, as IoT Core's at-least-once delivery may do. @default 0
   */
  readonly duplicateRate?: number;
  /** Source of the duplicate decisions. @default seededRandom(1) */
  readonly random?: RandomSource;
  /**
   * Acknowledge a QoS 1 message only after its invocations finished (or were dead-lettered),
   * rather than on arrival. Needs a persistent session to be worth anything: the broker then
   * sends an unacknowledged message again after a reconnect. @default true
   */
  readonly ackAfterHandling?: boolean;
  /**
   * Messages the connection received before the engine started (a resumed persistent session
   * delivers its backlog right after CONNACK); they are handled first, in arrival order.
   */
  readonly backlog?: MessageBacklog;
  readonly log?: StackLog;
}

/** A running rules engine. */
export interface RulesEngine {
  /** The rules it subscribed for (the catalogue minus `awsOnly`). */
  readonly rules: readonly RuleDefinition[];
  /** Messages received from the broker so far. */
  readonly received: number;
  /** Messages delivered to their rules a second time by fault injection (`duplicateRate`). */
  readonly duplicatesInjected: number;
  /** Messages received on the current connection whose PUBACK is held until they are handled. */
  readonly unacknowledged: number;
  /** Resolves when every received message has been handled (or dead-lettered). */
  idle(): Promise<void>;
  /** Unsubscribes, stops the sweeper, and waits for in-flight invocations. */
  stop(): Promise<void>;
}


/**
 * The event the rule's SQL selects: `encode(*, 'base64') AS payload, topic() AS topic,
 * timestamp() AS receivedAt` plus each `topic(n) AS <as>` (1-based; omitted when the topic has
 * no such level, as IoT omits an undefined result). `clientid()` has no local equivalent.
 */
export function buildRuleEvent(rule: RuleDefinition, topic: string, payload: Buffer, receivedAt: number): RuleEvent & Record<string, unknown> {
  const levels = topic.split('/');
  const event: RuleEvent & Record<string, unknown> = { payload: payload.toString('base64'), topic, receivedAt };
  for (const field of rule.topicFields) {
    const value = levels[field.index - 1];
    if (value !== undefined) event[field.as] = value;
  }
  return event;
}

/** Messages about one task (or one agent) are handled in arrival order: `tasks/t1`, `agents/a1`. */
function orderingKey(topic: string): string {
  return topic.split('/').slice(0, 2).join('/');
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A counting semaphore bounding concurrent invocations. */
class Semaphore {
  private available: number;
  private readonly waiters: (() => void)[] = [];
  constructor(size: number) {
    this.available = size;
  }
  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.available > 0) this.available -= 1;
    else await new Promise<void>((resolve) => this.waiters.push(resolve));
    try {
      return await work();
    } finally {
      const next = this.waiters.shift();
      if (next !== undefined) next();
      else this.available += 1;
    }
  }
}

/** Subscribes to every local rule and starts dispatching; resolves once all SUBACKs succeeded. */
export async function startRulesEngine(options: RulesEngineOptions): Promise<RulesEngine> {
  const log = options.log ?? silentLog;
  const now = options.now ?? Date.now;
  const rules = (options.rules ?? RULES).filter((r) => r.awsOnly !== true);
  const retryDelays = options.retryDelaysMs ?? [1000, 2000];
  const group = options.shareGroup ?? RULES_SHARE_GROUP;
  const semaphore = new Semaphore(Math.max(1, options.concurrency ?? 8));
  const duplicateRate = checkRate(options.duplicateRate ?? 0, 'duplicateRate');
  const random = options.random ?? seededRandom(1);
  let received = 0;
  let duplicatesInjected = 0;
  const chains = new Map<string, Promise<void>>();
  const inFlight = new Set<Promise<void>>();
  let stopping = false;
  const gate: PubackGate | undefined = options.ackAfterHandling === false ? undefined : pubackGate(options.mqtt);

  const invokeWithRetries = async (rule: RuleDefinition, event: RuleEvent): Promise<void> => {
    let lastError = '';
    for (let attempt = 0; attempt <= retryDelays.length; attempt++) {
      if (attempt > 0) await sleep(retryDelays[attempt - 1] ?? 0);
      try {
        await semaphore.run(() => options.invoker.invoke(rule.target, event));
        return;
      } catch (err) {
        lastError = (err as Error).message;
        log.warn('rule invocation failed', { rule: rule.name, function: rule.target, attempt: attempt + 1, error: lastError });
      }
    }
    await options.deadLetters.write({
      source: 'rules-engine', functionName: rule.target, rule: rule.name, attempts: retryDelays.length + 1, error: lastError,
      failedAt: new Date(now()).toISOString(), event,
    }).catch((err: Error) => log.error('could not write to the error destination', { error: err.message }));
  };

  const dispatch = (topic: string, payload: Buffer, packet: IPublishPacket, heldRelease?: PubackRelease): void => {
    const receivedAt = now();
    // Each rule subscribed with its own subscription identifier, so the broker says which
    // rules a message matched (and a rule fires once even if filters overlap).
    const ids = packet.properties?.subscriptionIdentifier;
    const matched = ids === undefined
      ? rules.filter((r) => topicMatches(r.topicFilter, topic))
      : (Array.isArray(ids) ? ids : [ids]).map((id) => rules[id - 1]).filter((r): r is RuleDefinition => r !== undefined);
    if (matched.length === 0) {
      log.warn('message matched no rule', { topic });
      heldRelease?.();
      return;
    }
    received += 1;
    // Registered now, before mqtt.js writes the PUBACK (right after the 'message' listeners).
    const release = heldRelease ?? gate?.hold(packet);
    const deliveries = duplicateRate > 0 && random() < duplicateRate ? 2 : 1;
    if (deliveries === 2) duplicatesInjected += 1;
    const key = orderingKey(topic);
    const handled: Promise<void>[] = [];
    for (let delivery = 0; delivery < deliveries; delivery += 1) {
      const previous = chains.get(key) ?? Promise.resolve();
      const next = previous.then(async () => {
        for (const rule of matched) await invokeWithRetries(rule, buildRuleEvent(rule, topic, payload, receivedAt));
      });
      chains.set(key, next);
      inFlight.add(next);
      handled.push(next);
      void next.finally(() => {
        inFlight.delete(next);
        if (chains.get(key) === next) chains.delete(key);
      });
    }
    // Every delivery, the injected duplicate too, has finished or been dead-lettered.
    if (release !== undefined) void Promise.allSettled(handled).then(release);
  };

  const onMessage = (topic: string, payload: Buffer, packet: IPublishPacket): void => {
    if (!stopping) dispatch(topic, payload, packet);
    // Arrived while stopping: not handled, so not acknowledged; the broker sends it again on
    // the session's next connection.
    else gate?.hold(packet);
  };
  options.mqtt.on('message', onMessage);
  // In the same turn as the listener above: nothing falls between the backlog and it.
  const backlog = options.backlog?.take() ?? [];
  for (const early of backlog) dispatch(early.topic, early.payload, early.packet, early.release);
  if (backlog.length > 0) log.info('rules engine took over messages that arrived before it started', { messages: backlog.length });

  const subscriptions = rules.map((r) => (group === false ? r.topicFilter : `$share/${group}/${r.topicFilter}`));
  try {
    for (const [index, filter] of subscriptions.entries()) {
      // Retain handling 2: a rule sees messages as they are published, never the retained
      // backlog a new subscription would otherwise replay (IoT rules do not either).
      const granted = await options.mqtt.subscribeAsync(filter, { qos: 1, rh: 2, properties: { subscriptionIdentifier: index + 1 } });
      const qos = granted[0]?.qos;
      if (qos !== 0 && qos !== 1) throw new Error(`the broker refused the rules subscription ${filter} (SUBACK ${String(qos)})`);
    }
  } catch (err) {
    options.mqtt.off('message', onMessage);
    throw err;
  }
  log.info('rules engine subscribed', { rules: rules.map((r) => r.name) });

  // mqtt.js subscribes again after a reconnect only when the broker lost the session. When the
  // session is present its subscriptions should be too, but Mosquitto 2.0 does not restore
  // shared subscriptions from its persistence file after a restart: the session comes back
  // without them and no rule would fire again. Subscribing again is idempotent (it replaces a
  // subscription with the same filter), so it is done on every resumed session. Plain filters
  // are restored with the session.
  const onReconnect = (connack: IConnackPacket): void => {
    if (stopping || connack.sessionPresent !== true || group === false) return;
    void (async () => {
      for (const [index, filter] of subscriptions.entries()) {
        const granted = await options.mqtt.subscribeAsync(filter, { qos: 1, rh: 2, properties: { subscriptionIdentifier: index + 1 } });
        const qos = granted[0]?.qos;
        if (qos !== 0 && qos !== 1) log.error('the broker refused a rules subscription after a reconnect', { filter, suback: qos });
      }
      log.info('rules engine subscriptions renewed after a reconnect', { rules: rules.length });
    })().catch((err: unknown) => log.error('could not renew the rules subscriptions after a reconnect', { error: (err as Error).message }));
  };
  options.mqtt.on('connect', onReconnect);

  let sweepTimer: NodeJS.Timeout | undefined;
  let sweeping: Promise<void> | undefined;
  if (options.sweeper !== false) {
    const sweeper = options.sweeper ?? { functionName: 'sweeper', intervalMs: 10_000 };
    sweepTimer = setInterval(() => {
      if (sweeping !== undefined || stopping) return;
      const at = new Date(now()).toISOString();
      const event = {
        version: '0', id: `local-sweep-${at}`, 'detail-type': 'Scheduled Event', source: 'aws.events', account: '000000000000',
        time: at, region: 'local', resources: ['arn:aws:events:local:000000000000:rule/porchlight-sweeper'], detail: {},
      };
      // A failed sweep is not retried here: the next tick is a retry.
      sweeping = options.invoker.invoke(sweeper.functionName, event).then(
        () => undefined,
        (err: Error) => log.warn('sweeper invocation failed', { error: err.message }),
      ).finally(() => {
        sweeping = undefined;
      });
    }, sweeper.intervalMs);
  }

  const idle = async (): Promise<void> => {
    while (inFlight.size > 0 || sweeping !== undefined) await Promise.allSettled([...inFlight, ...(sweeping ? [sweeping] : [])]);
  };

  return {
    rules,
    get received() {
      return received;
    },
    get duplicatesInjected() {
      return duplicatesInjected;
    },
    get unacknowledged() {
      return gate?.held ?? 0;
    },
    idle,
    stop: async () => {
      stopping = true;
      clearInterval(sweepTimer);
      options.mqtt.off('message', onMessage);
      options.mqtt.off('connect', onReconnect);
      if (options.mqtt.connected) await options.mqtt.unsubscribeAsync(subscriptions).catch(() => undefined);
      await idle();
      gate?.detach();
    },
  };
}
