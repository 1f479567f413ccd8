import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentEnvironment } from '../../../../agents/runtime/connection-env';
import { ConfigError } from '../../../../core/errors';

const dir = mkdtempSync(join(tmpdir(), 'porchlight-env-'));
const cert = join(dir, 'agent.crt');
const key = join(dir, 'agent.key');
const ca = join(dir, 'ca.crt');
for (const f of [cert, key, ca]) writeFileSync(f, 'pem');

const full = { PORCHLIGHT_HOST: 'localhost', PORCHLIGHT_PORT: '8883', PORCHLIGHT_CERT: cert, PORCHLIGHT_KEY: key, PORCHLIGHT_CA: ca, PORCHLIGHT_AGENT_ID: 'sql-1' };

describe('agentEnvironment', () => {
  describe('a complete environment', () => {
    it('returns the connection with the agent id as client id', () => {
      expect(agentEnvironment(full)).toEqual({
        agentId: 'sql-1',
        connection: { host: 'localhost', port: 8883, certPath: cert, keyPath: key, caPath: ca, clientId: 'sql-1' },
      });
    });

    it('leaves caPath out when PORCHLIGHT_CA is unset (system trust store)', () => {
      const { PORCHLIGHT_CA: _ca, ...rest } = full;
      expect(agentEnvironment(rest).connection.caPath).toBeUndefined();
    });
  });

  describe('a broken environment', () => {
    it('lists every missing variable', () => {
      expect(() => agentEnvironment({ PORCHLIGHT_HOST: 'h' })).toThrow('missing environment variables: PORCHLIGHT_PORT, PORCHLIGHT_CERT, PORCHLIGHT_KEY, PORCHLIGHT_AGENT_ID');
    });

    it('rejects a port that is not a TCP port', () => {
      expect(() => agentEnvironment({ ...full, PORCHLIGHT_PORT: '88x' })).toThrow('PORCHLIGHT_PORT=88x is not a TCP port (1-65535)');
      expect(() => agentEnvironment({ ...full, PORCHLIGHT_PORT: '70000' })).toThrow(ConfigError);
    });

    it('names the certificate variable whose file cannot be read', () => {
      expect(() => agentEnvironment({ ...full, PORCHLIGHT_CERT: join(dir, 'nope.crt') })).toThrow(/^PORCHLIGHT_CERT=.*nope\.crt is not a readable file \(ENOENT\)$/);
    });

    it('rejects an agent id that cannot be a topic level', () => {
      expect(() => agentEnvironment({ ...full, PORCHLIGHT_AGENT_ID: 'a/b' })).toThrow(/^PORCHLIGHT_AGENT_ID: agentId "a\/b" contains '\/'/);
    });
  });
});
