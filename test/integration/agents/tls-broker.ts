/**
 * A throwaway Mosquitto with a TLS listener that requires client certificates and takes the
 * certificate CN as the username, certificates issued by the local CA. The runtime's tests need
 * the broker's authentication behaviour, not the project's ACL, so no ACL file is loaded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { readFileSync } from 'node:fs';
import { ensureCa, issueCertificate, type IssuedCertificate } from '../../../local/ca';
import { freePort } from '../../../local/free-port';
import { requireExecutable } from '../../../local/processes';

export interface TlsBroker {
  readonly port: number;
  readonly dir: string;
  /** What the broker has logged so far (for failure messages). */
  logs(): string;
  /** Issues a client certificate whose CN is `identity`. */
  issue(identity: string, kind: 'agent' | 'orchestrator' | 'client'): Promise<IssuedCertificate>;
  stop(): Promise<void>;
}

async function waitForTls(port: number, ca: string, timeoutMs: number, logs: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost', rejectUnauthorized: false }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`mosquitto did not accept TLS on ${port} within ${timeoutMs} ms:\n${logs()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts Mosquitto on a free port with certificates from a fresh local CA. */
export async function startTlsBroker(): Promise<TlsBroker> {
  const mosquitto = await requireExecutable('mosquitto', 'for the agent runtime integration tests', ['/usr/sbin', '/usr/local/sbin']);
  const dir = await mkdtemp(join(tmpdir(), 'porchlight-agents-it-'));
  await ensureCa(dir);
  const server = await issueCertificate(dir, 'porchlight-broker', { kind: 'broker' });
  const port = await freePort();
  const config = join(dir, 'mosquitto.conf');
  const runningAsRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  await writeFile(
    config,
    [
      ...(runningAsRoot ? ['user root'] : []),
      'per_listener_settings false',
      'allow_anonymous false',
      'persistence false',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      'log_type notice',
      'log_type information',
      ...(process.env.PORCHLIGHT_BROKER_DEBUG === '1' ? ['log_type debug'] : []),
      `listener ${port} 127.0.0.1`,
      `cafile ${server.caPath}`,
      `certfile ${server.certPath}`,
      `keyfile ${server.keyPath}`,
      'require_certificate true',
      'use_identity_as_username true',
      '',
    ].join('\n'),
  );
  let output = '';
  const child: ChildProcess = spawn(mosquitto, ['-c', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  await waitForTls(port, readFileSync(server.caPath, 'utf8'), 10_000, () => output);
  return {
    port,
    dir,
    logs: () => output,
    issue: (identity, kind) => issueCertificate(dir, identity, { kind }),
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
