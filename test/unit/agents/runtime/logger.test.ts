import { createJsonLogger, isLogLevel } from '../../../../agents/runtime/logger';

describe('createJsonLogger', () => {
  describe('writing lines', () => {
    it('writes one JSON object per line with base, child and call fields, and flattens errors', () => {
      const lines: string[] = [];
      const log = createJsonLogger({ agentId: 'a1' }, 'info', (l) => lines.push(l)).child({ taskId: 't1' });
      log.warn('something', { error: Object.assign(new Error('bad'), { code: 'invalid-json' }) });
      expect(lines).toHaveLength(1);
      expect(lines[0]?.endsWith('\n')).toBe(true);
      expect(JSON.parse(lines[0] ?? '')).toMatchObject({ level: 'warn', message: 'something', agentId: 'a1', taskId: 't1', error: { name: 'Error', message: 'bad', code: 'invalid-json' } });
    });

    it('drops lines below its level', () => {
      const lines: string[] = [];
      const log = createJsonLogger({}, 'warn', (l) => lines.push(l));
      log.debug('d');
      log.info('i');
      log.error('e');
      expect(lines.map((l) => JSON.parse(l).message)).toEqual(['e']);
    });
  });

  describe('isLogLevel', () => {
    it('accepts the four levels and nothing else', () => {
      expect(['debug', 'info', 'warn', 'error'].every(isLogLevel)).toBe(true);
      expect(isLogLevel('trace')).toBe(false);
      expect(isLogLevel('toString')).toBe(false);
    });
  });
});
