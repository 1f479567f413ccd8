import { orderPresence, type PresenceMark } from '../../../core/presence';

const at = (event: PresenceMark['event'], t: number, version?: number): PresenceMark => ({ event, at: t, ...(version !== undefined ? { version } : {}) });

describe('orderPresence', () => {
  it('takes anything as newer than nothing', () => {
    expect(orderPresence(undefined, at('disconnected', 1))).toBe('newer');
  });

  it('orders by connection version when both events carry different ones, whatever their times', () => {
    expect(orderPresence(at('connected', 5_000, 8), at('disconnected', 9_000, 7))).toBe('stale');
    expect(orderPresence(at('disconnected', 9_000, 7), at('connected', 5_000, 8))).toBe('newer');
  });

  it('orders by time within one connection, or when a version is missing', () => {
    expect(orderPresence(at('connected', 1_000, 8), at('disconnected', 2_000, 8))).toBe('newer');
    expect(orderPresence(at('disconnected', 2_000, 8), at('connected', 1_000, 8))).toBe('stale');
    expect(orderPresence(at('connected', 1_000), at('disconnected', 900, 3))).toBe('stale');
  });

  it('puts a disconnect after a connect at the same time, and finds duplicates', () => {
    expect(orderPresence(at('connected', 1_000, 2), at('disconnected', 1_000, 2))).toBe('newer');
    expect(orderPresence(at('disconnected', 1_000, 2), at('connected', 1_000, 2))).toBe('stale');
    expect(orderPresence(at('disconnected', 1_000, 2), at('disconnected', 1_000, 2))).toBe('duplicate');
  });
});
