import { CoalescingThrottle } from '../../../../agents/runtime/coalescing-throttle';
import { ManualScheduler } from './manual-scheduler';

function setup(intervalMs = 100) {
  const scheduler = new ManualScheduler();
  const sent: [string, number][] = [];
  const throttle = new CoalescingThrottle<number>({ intervalMs, scheduler, send: (k, v) => sent.push([k, v]) });
  return { scheduler, sent, throttle };
}

describe('CoalescingThrottle', () => {
  describe('an idle throttle', () => {
    it('sends the first offer immediately', () => {
      const { sent, throttle } = setup();
      throttle.offer('a', 1);
      expect(sent).toEqual([['a', 1]]);
    });
  });

  describe('a burst on one key', () => {
    it('coalesces to the latest value and sends it when the interval has passed', () => {
      const { scheduler, sent, throttle } = setup();
      for (let i = 1; i <= 50; i++) throttle.offer('a', i);
      expect(sent).toEqual([['a', 1]]);
      scheduler.advance(99);
      expect(sent).toHaveLength(1);
      scheduler.advance(1);
      expect(sent).toEqual([['a', 1], ['a', 50]]);
      scheduler.advance(1000);
      expect(sent).toHaveLength(2);
    });
  });

  describe('many keys under load', () => {
    it('never sends more than one message per interval and serves the oldest waiting key first', () => {
      const { scheduler, sent, throttle } = setup(100);
      throttle.offer('a', 1);
      throttle.offer('b', 1);
      throttle.offer('c', 1);
      throttle.offer('b', 2);
      scheduler.advance(100);
      scheduler.advance(100);
      expect(sent).toEqual([['a', 1], ['b', 2], ['c', 1]]);
    });

    it('stays within 10 sends per second for 1000 offers spread over one second', () => {
      const { scheduler, sent, throttle } = setup(100);
      for (let i = 0; i < 1000; i++) {
        throttle.offer(`k${i % 7}`, i);
        scheduler.advance(1);
      }
      expect(sent.length).toBeLessThanOrEqual(11);
      expect(sent.length).toBeGreaterThanOrEqual(9);
    });
  });

  describe('dropping and disposing', () => {
    it('does not send a dropped key', () => {
      const { scheduler, sent, throttle } = setup();
      throttle.offer('a', 1);
      throttle.offer('b', 1);
      throttle.drop('b');
      scheduler.advance(500);
      expect(sent).toEqual([['a', 1]]);
    });

    it('ignores offers and cancels its timer after dispose', () => {
      const { scheduler, sent, throttle } = setup();
      throttle.offer('a', 1);
      throttle.offer('a', 2);
      throttle.dispose();
      throttle.offer('a', 3);
      scheduler.advance(500);
      expect(sent).toEqual([['a', 1]]);
      expect(scheduler.pending).toBe(0);
    });
  });

  describe('invalid interval', () => {
    it('throws a RangeError when the interval is not positive', () => {
      expect(() => new CoalescingThrottle({ intervalMs: 0, send: () => undefined })).toThrow(RangeError);
    });
  });
});
