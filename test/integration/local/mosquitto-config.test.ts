import { pbkdf2Sync } from 'node:crypto';
import { MAX_PAYLOAD_BYTES } from '../../../core/schemas';
import { WEBSOCKET_IDENTITY_PREFIX } from '../../../local/ca';
import { aclIdentities, mosquittoPaths, OBSERVER_USERNAME, passwordFileLine, renderMosquittoConfig, type MosquittoConfigInput } from '../../../local/mosquitto';

const input = (overrides: Partial<MosquittoConfigInput> = {}): MosquittoConfigInput => ({
  port: 18883,
  wsPort: 18080,
  caPath: '/state/pki/ca/ca.crt',
  certPath: '/state/pki/certs/porchlight-broker.crt',
  keyPath: '/state/pki/certs/porchlight-broker.key',
  paths: mosquittoPaths('/state'),
  runAsRoot: false,
  ...overrides,
});

/** The directives of the listener block that starts with `listener <port>`. */
function listenerBlock(config: string, port: number): string[] {
  const lines = config.split('\n').filter((l) => l.length > 0 && !l.startsWith('#'));
  const start = lines.indexOf(lines.find((l) => l.startsWith(`listener ${port} `)) ?? '');
  const end = lines.findIndex((l, i) => i > start && l.startsWith('listener '));
  return lines.slice(start, end === -1 ? undefined : end);
}

describe('mosquitto config rendering', () => {
  describe('renderMosquittoConfig', () => {
    it('renders a mutual-TLS listener on loopback where the certificate CN is username and client id', () => {
      const block = listenerBlock(renderMosquittoConfig(input()), 18883);
      expect(block).toEqual(expect.arrayContaining([
        'listener 18883 127.0.0.1', 'socket_domain ipv4', 'require_certificate true', 'use_identity_as_username true', 'use_username_as_clientid true',
        'allow_anonymous false', 'cafile /state/pki/ca/ca.crt', 'acl_file /state/mosquitto/acl.conf',
      ]));
      expect(block).not.toContain('password_file /state/mosquitto/passwords');
    });

    it('renders a password-protected WebSocket listener with the observer ACL, on IPv4 loopback only', () => {
      const block = listenerBlock(renderMosquittoConfig(input()), 18080);
      expect(block).toEqual(expect.arrayContaining([
        'listener 18080 127.0.0.1', 'socket_domain ipv4', 'protocol websockets', 'allow_anonymous false',
        'password_file /state/mosquitto/passwords', 'acl_file /state/mosquitto/observer.acl',
      ]));
    });

    it('forces WebSocket client ids to the username, so an observer cannot use another identity\'s client id', () => {
      expect(listenerBlock(renderMosquittoConfig(input()), 18080)).toContain('use_username_as_clientid true');
      expect(OBSERVER_USERNAME.startsWith(WEBSOCKET_IDENTITY_PREFIX)).toBe(true);
    });

    it('keeps authentication per listener, persistence on, and the IoT Core payload cap', () => {
      const config = renderMosquittoConfig(input());
      expect(config).toMatch(/^per_listener_settings true$/m);
      expect(config).toMatch(/^persistence true$/m);
      expect(config).toMatch(/^persistence_location \/state\/mosquitto\/data\/$/m);
      expect(config).toContain(`message_size_limit ${MAX_PAYLOAD_BYTES}`);
      expect(config).toMatch(/^log_dest file \/state\/logs\/mosquitto\.log$/m);
    });

    it('tells the broker to stay root only when started as root', () => {
      expect(renderMosquittoConfig(input({ runAsRoot: true }))).toMatch(/^user root$/m);
      expect(renderMosquittoConfig(input())).not.toMatch(/^user /m);
    });

    it('refuses a path with a line break, which would inject directives', () => {
      expect(() => renderMosquittoConfig(input({ caPath: '/x\nallow_anonymous true' }))).toThrow(/line break/);
    });

    it('refuses a port outside 1-65535', () => {
      expect(() => renderMosquittoConfig(input({ wsPort: 70000 }))).toThrow(/not a TCP port/);
    });
  });

  describe('passwordFileLine', () => {
    it('writes the $7$ PBKDF2-SHA512 format mosquitto_passwd writes', () => {
      const salt = Buffer.from('0123456789ab');
      const line = passwordFileLine('ws-observer', 's3cret', salt);
      const [user, hash] = line.split(':');
      const [, seven, iterations, saltB64, digest] = (hash ?? '').split('$');
      expect(user).toBe('ws-observer');
      expect(seven).toBe('7');
      expect(Buffer.from(saltB64 ?? '', 'base64')).toEqual(salt);
      expect(digest).toBe(pbkdf2Sync('s3cret', salt, Number(iterations), 64, 'sha512').toString('base64'));
    });

    it('refuses a username that would break the file format', () => {
      expect(() => passwordFileLine('ws-a:b', 'x')).toThrow(/letters, digits/);
    });

    it('refuses a username outside the WebSocket identity space, which a certificate could share', () => {
      expect(() => passwordFileLine('porchlight-orchestrator', 'x')).toThrow(/must start with "ws-"/);
    });
  });

  describe('aclIdentities', () => {
    it('maps identity kinds onto policy roles and leaves the broker out', () => {
      expect(aclIdentities({
        'porchlight-broker': { kind: 'broker', accreditations: [], pools: [] },
        'agent-1': { kind: 'agent', accreditations: ['gdpr'], pools: ['render'] },
        'client-1': { kind: 'client', accreditations: [], pools: [] },
      })).toEqual([
        { id: 'agent-1', role: 'agent', accreditations: ['gdpr'], pools: ['render'] },
        { id: 'client-1', role: 'client', accreditations: [], pools: [] },
      ]);
    });
  });
});
