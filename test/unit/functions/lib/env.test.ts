import { ConfigError } from '../../../../core/errors';
import { Env } from '../../../../functions/lib/env';

describe('Env', () => {
  describe('string', () => {
    it('returns the trimmed value', () => {
      expect(new Env({ TABLE_NAME: ' t ' }).string('TABLE_NAME')).toBe('t');
    });

    it('throws ConfigError naming a missing or blank variable', () => {
      expect(() => new Env({}).string('TABLE_NAME')).toThrow(new ConfigError('environment variable TABLE_NAME is required but not set'));
      expect(() => new Env({ TABLE_NAME: '  ' }).string('TABLE_NAME')).toThrow(/TABLE_NAME is required/);
    });
  });

  describe('url', () => {
    it('accepts http and https URLs', () => {
      expect(new Env({ Q: 'http://localhost:9324/q' }).url('Q')).toBe('http://localhost:9324/q');
      expect(new Env({}).optionalUrl('Q')).toBeUndefined();
    });

    it('throws ConfigError naming the variable for a non-URL or another scheme', () => {
      expect(() => new Env({ IOT_DATA_ENDPOINT: 'example.iot.amazonaws.com' }).optionalUrl('IOT_DATA_ENDPOINT')).toThrow(/IOT_DATA_ENDPOINT must be an http\(s\) URL/);
      expect(() => new Env({ IOT_DATA_ENDPOINT: 'mqtts://x' }).optionalUrl('IOT_DATA_ENDPOINT')).toThrow(ConfigError);
    });
  });

  describe('int', () => {
    it('uses the fallback when unset and parses whole numbers', () => {
      expect(new Env({}).int('LEASE_MS', 60_000)).toBe(60_000);
      expect(new Env({ LEASE_MS: '1500' }).int('LEASE_MS', 60_000)).toBe(1500);
    });

    it('throws ConfigError naming the variable for a non-number or an out-of-range value', () => {
      expect(() => new Env({ LEASE_MS: '1.5s' }).int('LEASE_MS', 1)).toThrow('environment variable LEASE_MS must be a whole number; got "1.5s"');
      expect(() => new Env({ MAX_ATTEMPTS: '0' }).int('MAX_ATTEMPTS', 3, { min: 1, max: 100 })).toThrow('environment variable MAX_ATTEMPTS must be between 1 and 100; got 0');
    });
  });
});
