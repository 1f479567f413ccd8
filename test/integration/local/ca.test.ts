import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidIdError } from '../../../core/errors';
import { caPaths, ensureCa, issueCertificate, readIdentities } from '../../../local/ca';

function certText(path: string): string {
  return execFileSync('openssl', ['x509', '-in', path, '-noout', '-text', '-serial'], { encoding: 'utf8' });
}

describe('local CA', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'porchlight-ca-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe('issuing', () => {
    it('issues an EC P-256 client certificate whose CN is the identity, signed by the CA', async () => {
      const issued = await issueCertificate(dir, 'agent-1', { kind: 'agent' });
      const text = certText(issued.certPath);
      expect(text).toMatch(/Subject: CN ?= ?agent-1/);
      expect(text).toMatch(/NIST CURVE: P-256|prime256v1/);
      expect(text).toMatch(/TLS Web Client Authentication/);
      expect(execFileSync('openssl', ['verify', '-CAfile', issued.caPath, issued.certPath], { encoding: 'utf8' })).toContain('OK');
      expect((await stat(issued.keyPath)).mode & 0o777).toBe(0o600);
    });

    it('gives the broker certificate server authentication and SANs for localhost and 127.0.0.1', async () => {
      const issued = await issueCertificate(dir, 'porchlight-broker', { kind: 'broker' });
      const text = certText(issued.certPath);
      expect(text).toMatch(/TLS Web Server Authentication/);
      expect(text).toMatch(/DNS:localhost, IP Address:127\.0\.0\.1/);
    });

    it('returns the existing certificate instead of issuing a new one when it is still valid', async () => {
      const first = await issueCertificate(dir, 'agent-2', { kind: 'agent' });
      const serial = certText(first.certPath).match(/serial=(\w+)/)?.[1];
      const again = await issueCertificate(dir, 'agent-2', { kind: 'agent', accreditations: ['gdpr'] });
      expect(certText(again.certPath).match(/serial=(\w+)/)?.[1]).toBe(serial);
    });

    it('re-issues a certificate when the CA that signed it has been replaced', async () => {
      const first = await issueCertificate(dir, 'agent-3', { kind: 'agent' });
      const serial = certText(first.certPath).match(/serial=(\w+)/)?.[1];
      await rm(join(dir, 'ca'), { recursive: true });
      await ensureCa(dir);
      const again = await issueCertificate(dir, 'agent-3', { kind: 'agent' });
      expect(certText(again.certPath).match(/serial=(\w+)/)?.[1]).not.toBe(serial);
      expect(execFileSync('openssl', ['verify', '-CAfile', caPaths(dir).caPath, again.certPath], { encoding: 'utf8' })).toContain('OK');
    });

    it('issues concurrently without corrupting the registry', async () => {
      await Promise.all(['agent-c1', 'agent-c2', 'agent-c3', 'client-c4'].map((id) => issueCertificate(dir, id, { kind: id.startsWith('client') ? 'client' : 'agent' })));
      expect(Object.keys(await readIdentities(dir)).sort()).toEqual(['agent-c1', 'agent-c2', 'agent-c3', 'client-c4']);
    });
  });

  describe('identity registry', () => {
    it('records kind, accreditations and pools in identities.json, accreditations.json and pools.json, without the broker', async () => {
      await issueCertificate(dir, 'porchlight-broker', { kind: 'broker' });
      await issueCertificate(dir, 'agent-4', { kind: 'agent', accreditations: ['gdpr', 'ISO27001', 'gdpr'], pools: ['render', 'render', 'gpu'] });
      await issueCertificate(dir, 'client-4', { kind: 'client' });
      expect(JSON.parse(await readFile(join(dir, 'identities.json'), 'utf8'))).toEqual({
        'agent-4': { kind: 'agent', accreditations: ['ISO27001', 'gdpr'], pools: ['gpu', 'render'] },
        'client-4': { kind: 'client', accreditations: [], pools: [] },
      });
      expect(JSON.parse(await readFile(join(dir, 'accreditations.json'), 'utf8'))).toEqual({ 'agent-4': ['ISO27001', 'gdpr'], 'client-4': [] });
      expect(JSON.parse(await readFile(join(dir, 'pools.json'), 'utf8'))).toEqual({ 'agent-4': ['gpu', 'render'] });
    });

    it('makes only agents pool members, with valid pool names', async () => {
      await expect(issueCertificate(dir, 'client-9', { kind: 'client', pools: ['render'] })).rejects.toThrow(/only agents can be pool members/);
      await expect(issueCertificate(dir, 'agent-9', { kind: 'agent', pools: ['a/b'] })).rejects.toBeInstanceOf(InvalidIdError);
    });

    it('reads a registry written before pools existed as having none', async () => {
      await writeFile(join(dir, 'identities.json'), JSON.stringify({ 'agent-10': { kind: 'agent', accreditations: ['gdpr'] } }));
      expect((await readIdentities(dir))['agent-10']).toEqual({ kind: 'agent', accreditations: ['gdpr'], pools: [] });
    });

    it('replaces an identity\'s accreditations with the latest issue request', async () => {
      await issueCertificate(dir, 'agent-5', { kind: 'agent', accreditations: ['gdpr'] });
      await issueCertificate(dir, 'agent-5', { kind: 'agent' });
      expect((await readIdentities(dir))['agent-5']).toEqual({ kind: 'agent', accreditations: [], pools: [] });
    });

    it('refuses to give an identity a second kind', async () => {
      await issueCertificate(dir, 'agent-6', { kind: 'agent' });
      await expect(issueCertificate(dir, 'agent-6', { kind: 'orchestrator' })).rejects.toThrow(/already registered as agent/);
    });

    it('reports a registry file that is not JSON, naming the file', async () => {
      await issueCertificate(dir, 'agent-7', { kind: 'agent' });
      await writeFile(join(dir, 'identities.json'), '{not json');
      await expect(readIdentities(dir)).rejects.toThrow(/identities\.json is not valid JSON/);
    });
  });

  describe('validation', () => {
    it.each([['agent/1'], ['agent+'], ['#'], ['$SYS'], [''], ['a b']])('refuses identity %j before creating anything', async (id) => {
      await expect(issueCertificate(dir, id, { kind: 'agent' })).rejects.toBeInstanceOf(InvalidIdError);
      await expect(stat(join(dir, 'ca'))).rejects.toMatchObject({ code: 'ENOENT' });
    });

    it.each([['ws-observer'], ['WS-agent'], ['ws-']])('refuses %j, a name in the WebSocket listener\'s identity space, for every kind', async (id) => {
      for (const kind of ['agent', 'client', 'orchestrator', 'observer'] as const) {
        await expect(issueCertificate(dir, id, { kind })).rejects.toThrow(/reserved for the WebSocket listener/);
      }
      await expect(stat(join(dir, 'ca'))).rejects.toMatchObject({ code: 'ENOENT' });
    });

    it('refuses a registry that lists a name in the WebSocket listener\'s identity space', async () => {
      await writeFile(join(dir, 'identities.json'), JSON.stringify({ 'ws-observer': { kind: 'agent', accreditations: [] } }));
      await expect(readIdentities(dir)).rejects.toThrow(/reserved for the WebSocket listener/);
    });

    it('refuses an accreditation label that could not be a thing-group name', async () => {
      await expect(issueCertificate(dir, 'agent-8', { kind: 'agent', accreditations: ['gdpr/x'] })).rejects.toBeInstanceOf(InvalidIdError);
    });

    it('refuses accreditations on the broker certificate', async () => {
      await expect(issueCertificate(dir, 'porchlight-broker', { kind: 'broker', accreditations: ['gdpr'] })).rejects.toThrow(/broker/);
    });
  });
});
