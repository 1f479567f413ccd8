import { createHash } from 'node:crypto';
import { sha256, SystemClock } from '../../../../functions/adapters/system';

describe('system adapters', () => {
  describe('SystemClock', () => {
    it('reads the host clock', () => {
      const before = Date.now();
      const now = new SystemClock().now();
      expect(now).toBeGreaterThanOrEqual(before);
      expect(now).toBeLessThanOrEqual(Date.now());
    });
  });

  describe('sha256', () => {
    it('is the lower-case hex digest of the UTF-8 text', () => {
      expect(sha256('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
      expect(sha256('naïve')).toBe(createHash('sha256').update(Buffer.from('naïve', 'utf8')).digest('hex'));
    });
  });
});
