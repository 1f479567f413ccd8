import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MissingDependencyError, requireExecutable, stopChild, waitUntil } from '../../../local/processes';
import { preflight } from '../../../local/stack';

describe('external processes', () => {
  describe('requireExecutable', () => {
    let emptyDir: string;
    const savedPath = process.env.PATH;

    beforeEach(async () => {
      emptyDir = await mkdtemp(join(tmpdir(), 'porchlight-path-'));
    });

    afterEach(async () => {
      process.env.PATH = savedPath;
      await rm(emptyDir, { recursive: true, force: true });
    });

    it('names the apt-get command when java is missing', async () => {
      process.env.PATH = emptyDir;
      const err = await requireExecutable('java', 'to run DynamoDB Local').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MissingDependencyError);
      expect((err as Error).message).toBe('java is required to run DynamoDB Local but was not found; install it with: sudo apt-get install -y openjdk-17-jre-headless');
    });

    it('makes the stack preflight fail before anything starts when a program is missing', async () => {
      process.env.PATH = emptyDir;
      await expect(preflight()).rejects.toThrow(/sudo apt-get install -y (openssl|openjdk-17-jre-headless)/);
    });

    it('finds mosquitto in /usr/sbin even when it is not on PATH', async () => {
      process.env.PATH = emptyDir;
      await expect(requireExecutable('mosquitto', 'to run the local MQTT broker', ['/usr/sbin'])).resolves.toBe('/usr/sbin/mosquitto');
    });
  });

  describe('stopChild', () => {
    it('kills a process that ignores SIGTERM once the grace period is over', async () => {
      const child = spawn('sh', ['-c', 'trap "" TERM; echo ready; sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
      await new Promise((resolve) => child.stdout.once('data', resolve));
      const started = Date.now();
      await stopChild(child, 200);
      expect(child.signalCode).toBe('SIGKILL');
      expect(Date.now() - started).toBeLessThan(5000);
    });
  });

  describe('waitUntil', () => {
    it('gives up at once with the fatal error instead of waiting for the timeout', async () => {
      const started = Date.now();
      await expect(waitUntil('nothing', async () => false, { timeoutMs: 10_000, fatal: () => new Error('the process died') })).rejects.toThrow('the process died');
      expect(Date.now() - started).toBeLessThan(1000);
    });

    it('reports the last probe error when it times out', async () => {
      await expect(waitUntil('the answer', async () => {
        throw new Error('connection refused');
      }, { timeoutMs: 100, intervalMs: 20 })).rejects.toThrow('timed out after 100 ms waiting for the answer: connection refused');
    });
  });
});
