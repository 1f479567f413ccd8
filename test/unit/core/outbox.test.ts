import type { OutboundMessage } from '../../../core/model';
import { canonicalJson, enqueue, enqueueAll, flush } from '../../../core/outbox';
import { RecordingPublisher } from '../../helpers/in-memory-ports';

const msg = (topic: string, payload: unknown, retain = true): OutboundMessage => ({ topic, payload: payload as OutboundMessage['payload'], qos: 1, retain });

describe('outbox', () => {
  describe('enqueue', () => {
    it('lets a retained message supersede an earlier retained one on the same topic', () => {
      const out = enqueueAll([], [msg('s', 1), msg('a', 'x', false), msg('a', 'y', false), msg('s', 2)]);
      expect(out.map((m) => [m.topic, m.payload])).toEqual([['a', 'x'], ['a', 'y'], ['s', 2]]);
    });

    it('does not change the outbox it was given', () => {
      const original = [msg('s', 1)];
      enqueue(original, msg('s', 2));
      expect(original).toEqual([msg('s', 1)]);
    });
  });

  describe('flush', () => {
    it('publishes in order and stops at the first failure, keeping the rest', async () => {
      const publisher = new RecordingPublisher();
      publisher.failNext(1, (m) => m.topic === 'b');
      const result = await flush(publisher, [msg('a', 1), msg('b', 2), msg('c', 3)]);
      expect(result.published.map((m) => m.topic)).toEqual(['a']);
      expect(result.remaining.map((m) => m.topic)).toEqual(['b', 'c']);
      expect(result.error).toBeInstanceOf(Error);
      expect(publisher.messages.map((m) => m.topic)).toEqual(['a']);
    });
  });

  describe('canonicalJson', () => {
    it('ignores key order and undefined members but not array order', () => {
      expect(canonicalJson({ b: 1, a: { d: [1, 2], c: undefined } })).toBe(canonicalJson({ a: { d: [1, 2] }, b: 1 }));
      expect(canonicalJson([1, 2])).not.toBe(canonicalJson([2, 1]));
    });
  });
});
