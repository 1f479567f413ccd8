/**
 * Test-only fault injection for agent processes. Never set any of it in production.
 *
 * - PORCHLIGHT_FAULT_DUPLICATE_RATE: AWS IoT Core may deliver a QoS 1 message to a subscriber
 *   more than once, with a new packet id and no DUP flag; the runtime hands that fraction of
 *   inbound messages to its dispatcher twice, proving that assignments are deduplicated and
 *   effects happen once.
 * - PORCHLIGHT_FAULT_KILL_AFTER_EFFECT: the process SIGKILLs itself once `execute()` has returned
 *   (its effect is done) and before the output reaches the broker, at one of two points (see
 *   {@link KillPoint}). This is the crash that the assignment journal exists for; a test restarts
 *   the process with the same identity and journal and checks that the effect happened once.
 */
import { ConfigError } from '../../core/errors';
import { seededRandom } from '../../core/seeded-random';

/** Environment variables of the fault injection. */
export const FAULT_ENV = {
  /** Fraction (0..1) of inbound messages dispatched twice. */
  duplicateRate: 'PORCHLIGHT_FAULT_DUPLICATE_RATE',
  /** Seed of the duplicate decisions (an unsigned integer). */
  seed: 'PORCHLIGHT_FAULT_SEED',
  /** A {@link KillPoint}: where the process kills itself after an execution's effect. */
  killAfterEffect: 'PORCHLIGHT_FAULT_KILL_AFTER_EFFECT',
} as const;

/**
 * Where a test-only kill strikes after `execute()` returned:
 * - `before-journal`: before the output is journaled as finished (the journal says `started`),
 * - `before-publish`: after the output is journaled, before it is published.
 */
export type KillPoint = 'before-journal' | 'before-publish';

const KILL_POINTS: readonly KillPoint[] = ['before-journal', 'before-publish'];

/** Faults injected into the runtime. */
export interface RuntimeFaults {
  /** Fraction (0..1) of inbound messages dispatched a second time. */
  readonly duplicateRate: number;
  /** Source of the decisions, in [0, 1). @default Math.random */
  readonly random?: () => number;
  /** Kill the process after the first execution's effect, at this point. @default never */
  readonly killAfterEffect?: KillPoint;
  /** How the kill is done. @default SIGKILL to this process */
  readonly kill?: () => void;
}

export { seededRandom } from '../../core/seeded-random';

/**
 * Reads the fault injection settings from the environment; undefined when none is set.
 * @throws ConfigError naming the variable that is malformed
 */
export function faultsFromEnvironment(env: NodeJS.ProcessEnv): RuntimeFaults | undefined {
  const rateText = (env[FAULT_ENV.duplicateRate] ?? '').trim();
  const killText = (env[FAULT_ENV.killAfterEffect] ?? '').trim();
  if (rateText === '' && killText === '') return undefined;
  let killAfterEffect: KillPoint | undefined;
  if (killText !== '') {
    if (!(KILL_POINTS as readonly string[]).includes(killText)) throw new ConfigError(`${FAULT_ENV.killAfterEffect}=${killText} is not one of ${KILL_POINTS.join(', ')}`);
    killAfterEffect = killText as KillPoint;
  }
  const kill = killAfterEffect === undefined ? {} : { killAfterEffect };
  if (rateText === '') return { duplicateRate: 0, ...kill };
  const rate = Number(rateText);
  if (!Number.isFinite(rate) || rate < 0 || rate > 1) throw new ConfigError(`${FAULT_ENV.duplicateRate}=${rateText} is not a number from 0 to 1`);
  const seedText = (env[FAULT_ENV.seed] ?? '').trim();
  if (seedText === '') return { duplicateRate: rate, ...kill };
  if (!/^\d{1,10}$/.test(seedText) || Number(seedText) > 0xffffffff) throw new ConfigError(`${FAULT_ENV.seed}=${seedText} is not an unsigned 32-bit integer`);
  return { duplicateRate: rate, random: seededRandom(Number(seedText)), ...kill };
}
