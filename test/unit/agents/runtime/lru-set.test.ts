import { LruSet } from '../../../../agents/runtime/lru-set';

describe('LruSet', () => {
  describe('adding keys', () => {
    it('reports a key as new the first time and as known afterwards', () => {
      const set = new LruSet(3);
      expect(set.add('a')).toBe(true);
      expect(set.add('a')).toBe(false);
      expect(set.has('a')).toBe(true);
    });
  });

  describe('when full', () => {
    it('forgets the least recently added key first', () => {
      const set = new LruSet(2);
      set.add('a');
      set.add('b');
      set.add('c');
      expect(set.has('a')).toBe(false);
      expect(set.has('b')).toBe(true);
      expect(set.has('c')).toBe(true);
      expect(set.size).toBe(2);
    });

    it('keeps a re-added key as the most recent so it outlives older ones', () => {
      const set = new LruSet(2);
      set.add('a');
      set.add('b');
      set.add('a');
      set.add('c');
      expect(set.has('a')).toBe(true);
      expect(set.has('b')).toBe(false);
    });
  });

  describe('deleting', () => {
    it('lets a deleted key be added as new again', () => {
      const set = new LruSet(2);
      set.add('a');
      set.delete('a');
      expect(set.add('a')).toBe(true);
    });
  });

  describe('invalid capacity', () => {
    it('throws a RangeError when capacity is not a positive integer', () => {
      expect(() => new LruSet(0)).toThrow(RangeError);
      expect(() => new LruSet(1.5)).toThrow(/positive integer/);
    });
  });
});
