/**
 * Test-only fault injection for agent processes. AWS IoT Core may deliver a QoS 1 message to a
 * subscriber more than once, with a new packet id and no DUP flag; a test sets
 * PORCHLIGHT_FAULT_DUPLICATE_RATE to make the runtime hand that fraction of inbound messages to
 * its dispatcher twice, proving that assignments are deduplicated and effects happen once.
 * Never set it in production.
 */
import { ConfigError } from '../../core/errors';
import { seededRandom } from '../../core/seeded-random';

/** Environment variables of the fault injection. */
export const FAULT_ENV = {
  /** Fraction (0..1) of inbound messages dispatched twice. */
  duplicateRate: 'PORCHLIGHT_FAULT_DUPLICATE_RATE',
  /** Seed of the duplicate decisions (an unsigned integer). */
  seed: 'PORCHLIGHT_FAULT_SEED',
} as const;

/** Faults injected into the runtime's inbound dispatch. */
export interface RuntimeFaults {
  /** Fraction (0..1) of inbound messages dispatched a second time. */
  readonly duplicateRate: number;
  /** Source of the decisions, in [0, 1). @default Math.random */
  readonly random?: () => number;
}

export { seededRandom } from '../../core/seeded-random';

/**
 * Reads the fault injection settings from the environment; undefined when none is set.
 * @throws ConfigError naming the variable that is malformed
 */
export function faultsFromEnvironment(env: NodeJS.ProcessEnv): RuntimeFaults | undefined {
  const rateText = (env[FAULT_ENV.duplicateRate] ?? '').trim();
  if (rateText === '') return undefined;
  const rate = Number(rateText);
  if (!Number.isFinite(rate) || rate < 0 || rate > 1) throw new ConfigError(`${FAULT_ENV.duplicateRate}=${rateText} is not a number from 0 to 1`);
  const seedText = (env[FAULT_ENV.seed] ?? '').trim();
  if (seedText === '') return { duplicateRate: rate };
  if (!/^\d{1,10}$/.test(seedText) || Number(seedText) > 0xffffffff) throw new ConfigError(`${FAULT_ENV.seed}=${seedText} is not an unsigned 32-bit integer`);
  return { duplicateRate: rate, random: seededRandom(Number(seedText)) };
}
