import { ConcurrencyGate } from '../../../../agents/runtime/concurrency-gate';

function deferred() {
  let resolve: () => void = () => undefined;
  let reject: (e: Error) => void = () => undefined;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const flush = () => new Promise((r) => setImmediate(r));

describe('ConcurrencyGate', () => {
  describe('under capacity', () => {
    it('starts items until maxActive are running', () => {
      const started: number[] = [];
      const gate = new ConcurrencyGate<number>(2, 0, async (n) => {
        started.push(n);
        await new Promise(() => undefined);
      });
      expect(gate.offer(1)).toBe('started');
      expect(gate.offer(2)).toBe('started');
      expect(started).toEqual([1, 2]);
      expect(gate.active).toBe(2);
    });
  });

  describe('over capacity', () => {
    it('queues up to maxQueued, refuses the rest, and starts queued items as slots free up', async () => {
      const runs = new Map<number, ReturnType<typeof deferred>>();
      const gate = new ConcurrencyGate<number>(1, 1, (n) => {
        const d = deferred();
        runs.set(n, d);
        return d.promise;
      });
      expect(gate.offer(1)).toBe('started');
      expect(gate.offer(2)).toBe('queued');
      expect(gate.offer(3)).toBe('rejected');
      expect(gate.queued).toBe(1);
      runs.get(1)?.resolve();
      await flush();
      expect(runs.has(2)).toBe(true);
      expect(gate.active).toBe(1);
      expect(gate.queued).toBe(0);
    });

    it('frees the slot when an item fails', async () => {
      const gate = new ConcurrencyGate<number>(1, 0, () => Promise.reject(new Error('boom')));
      gate.offer(1);
      await flush();
      expect(gate.active).toBe(0);
      expect(gate.offer(2)).toBe('started');
    });

    it('frees the slot when run throws synchronously', async () => {
      const gate = new ConcurrencyGate<number>(1, 0, () => {
        throw new Error('sync boom');
      });
      gate.offer(1);
      await flush();
      expect(gate.active).toBe(0);
    });
  });

  describe('draining', () => {
    it('returns queued items from clearQueue and resolves idle once running items finish', async () => {
      const d = deferred();
      const gate = new ConcurrencyGate<number>(1, 5, () => d.promise);
      gate.offer(1);
      gate.offer(2);
      gate.offer(3);
      expect(gate.clearQueue()).toEqual([2, 3]);
      let idle = false;
      void gate.idle().then(() => (idle = true));
      await flush();
      expect(idle).toBe(false);
      d.resolve();
      await flush();
      expect(idle).toBe(true);
    });

    it('resolves idle at once when nothing runs', async () => {
      await expect(new ConcurrencyGate<number>(1, 0, async () => undefined).idle()).resolves.toBeUndefined();
    });
  });

  describe('invalid bounds', () => {
    it('throws a RangeError for a non-positive maxActive or a negative maxQueued', () => {
      expect(() => new ConcurrencyGate(0, 0, async () => undefined)).toThrow(RangeError);
      expect(() => new ConcurrencyGate(1, -1, async () => undefined)).toThrow(RangeError);
    });
  });
});
