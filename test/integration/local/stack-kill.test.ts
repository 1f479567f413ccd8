/**
 * The process running the local stack dies mid-handler (SIGKILL: no clean-up of any kind) and is
 * started again on the same state directory. The rules engine acknowledges a message only once
 * its handler finished, so the broker still holds the one that was in a handler; the new start
 * stops the broker the dead process left running (it writes its persistence file), starts one on
 * the same files, rejoins the orchestrator's persistent session and gets the message again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { MqttClient } from 'mqtt';
import type { IssuedCertificate } from '../../../local/ca';
import { connectWithCertificate } from '../../../local/mqtt-connect';
import { stopLeftoverProcess, waitForExit, waitUntil } from '../../../local/processes';

jest.setTimeout(240_000);

const REPO_ROOT = resolve(__dirname, '..', '..', '..');
const STACK_PROCESS = join(__dirname, 'fixtures', 'stack-process.ts');

interface Ready {
  readonly mqttPort: number;
  readonly agent: IssuedCertificate;
  readonly mosquittoPidFile: string;
}

interface Line {
  readonly topic: string;
  readonly generation?: string;
  readonly event?: { readonly topic: string };
}

describe('local stack process killed mid-handler', () => {
  let stateDir: string;
  let recordFile: string;
  let finishFile: string;
  const children: ChildProcess[] = [];
  let agent: MqttClient | undefined;

  /** Starts the stack in a child process and resolves with what it prints once ready. */
  async function startStack(generation: string): Promise<{ child: ChildProcess; ready: Ready }> {
    const child = spawn(process.execPath, ['--import', 'tsx', STACK_PROCESS, stateDir, generation, recordFile, finishFile], {
      cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const ready = await new Promise<Ready>((resolveReady, reject) => {
      const timer = setTimeout(() => reject(new Error(`stack ${generation} not ready within 120 s: ${stderr.slice(-2000)}`)), 120_000);
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', (line) => {
        clearTimeout(timer);
        resolveReady(JSON.parse(line) as Ready);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`stack ${generation} exited (${String(code ?? signal)}) before it was ready: ${stderr.slice(-2000)}`));
      });
    });
    return { child, ready };
  }

  async function lines(file: string): Promise<Line[]> {
    const text = await readFile(file, 'utf8').catch(() => '');
    return text.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as Line);
  }
  const started = async (topic: string): Promise<number> => (await lines(recordFile)).filter((r) => r.event?.topic === topic).length;
  const finished = async (topic: string, generation: string): Promise<boolean> => (await lines(finishFile)).some((r) => r.topic === topic && r.generation === generation);

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'porchlight-kill-'));
    recordFile = join(stateDir, 'records.jsonl');
    finishFile = join(stateDir, 'finished.jsonl');
  });

  afterAll(async () => {
    await agent?.endAsync(true).catch(() => undefined);
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await Promise.race([waitForExit(child), new Promise((r) => setTimeout(r, 30_000))]);
        child.kill('SIGKILL');
      }
    }
    // Whatever broker a killed generation left behind, should the test have failed before the restart.
    await stopLeftoverProcess(join(stateDir, 'mosquitto', 'mosquitto.pid'), join(stateDir, 'mosquitto', 'mosquitto.conf'));
    await rm(stateDir, { recursive: true, force: true });
  });

  it('handles after the restart what the killed process was handling and what arrived while it was down', async () => {
    const first = await startStack('1');
    agent = await connectWithCertificate({ host: '127.0.0.1', port: first.ready.mqttPort, ...first.ready.agent, extra: { reconnectPeriod: 0 } });
    agent.on('error', () => undefined);

    const done = 'tasks/t-kill-done/output/s1/agent-kill';
    const blocked = 'tasks/t-kill-block-in-first/output/s1/agent-kill';
    const whileDown = 'tasks/t-kill-gap/output/s1/agent-kill';
    await agent.publishAsync(done, '{"n":1}', { qos: 1 });
    await waitUntil('the first message to be handled', () => finished(done, '1'), { timeoutMs: 30_000, intervalMs: 50 });
    await agent.publishAsync(blocked, '{"n":2}', { qos: 1 });
    await waitUntil('the handler to be blocked on the second message', async () => (await started(blocked)) === 1, { timeoutMs: 30_000, intervalMs: 50 });
    // Enough for the first message's PUBACK to reach the broker.
    await new Promise((r) => setTimeout(r, 500));

    first.child.kill('SIGKILL');
    await waitForExit(first.child);
    // The dead process's broker is still up and takes a message for the orchestrator's session.
    await agent.publishAsync(whileDown, '{"n":3}', { qos: 1 });
    await agent.endAsync();
    const leftoverPid = Number((await readFile(first.ready.mosquittoPidFile, 'utf8')).trim());

    await startStack('2');
    await waitUntil('both messages to be handled after the restart', async () => (await finished(blocked, '2')) && (await finished(whileDown, '2')), { timeoutMs: 60_000, intervalMs: 100 });
    expect(await finished(blocked, '1')).toBe(false);
    // The message handled before the kill was acknowledged, so it does not come again.
    expect(await started(done)).toBe(1);
    expect(() => process.kill(leftoverPid, 0)).toThrow();
  });
});
