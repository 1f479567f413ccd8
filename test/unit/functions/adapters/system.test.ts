import { createHash } from 'node:crypto';
import { CryptoIdGenerator, sha256, SystemClock } from '../../../../functions/adapters/system';

describe('system adapters', () => {
  describe('CryptoIdGenerator', () => {
    it('makes 24-character URL-safe tokens that do not repeat', () => {
      const ids = new CryptoIdGenerator();
      const tokens = Array.from({ length: 200 }, () => ids.token());
      expect(tokens.every((t) => /^[A-Za-z0-9_-]{24}$/.test(t))).toBe(true);
      expect(new Set(tokens).size).toBe(tokens.length);
    });
  });

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
