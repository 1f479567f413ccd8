/**
 * Time as the runtime's pure pieces see it: injected, so tests drive it without real waiting.
 */

/** An opaque timer handle. */
export type TimerHandle = object | number;

/** Clock plus one-shot timers. */
export interface Scheduler {
  /** Epoch milliseconds. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/**
 * The real scheduler. Its timers are unref'd: a pending throttle flush or telemetry tick must
 * never be what keeps an agent process alive after its MQTT client has stopped.
 */
export const systemScheduler: Scheduler = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};
