/**
 * Judges the running stack by the kernel's own tables: every TCP socket the stack's processes
 * listen on must be reachable only from this machine. A socket bound to a loopback address
 * passes; one bound to a wildcard passes only in a network namespace of its own whose sole
 * interface is loopback (DynamoDB Local's). Linux only: it reads /proc.
 */
import { readdir, readFile, readlink } from 'node:fs/promises';
import { startTestStack, type TestStack } from '../../helpers/local-stack';

/** One listening TCP socket of a process, as /proc/<pid>/net/tcp{,6} reports it. */
interface ListeningSocket {
  readonly pid: number;
  readonly command: string;
  readonly address: string;
  readonly port: number;
  /** The process's network namespace (`net:[inode]`). */
  readonly netns: string;
}

/** An IPv4 address from /proc/net/tcp: 8 hex digits, the 32-bit word in host (little-endian) order. */
function ipv4(hex: string): string {
  return [6, 4, 2, 0].map((i) => parseInt(hex.slice(i, i + 2), 16)).join('.');
}

/** An IPv6 address from /proc/net/tcp6: four 32-bit words, each in host (little-endian) order. */
function ipv6(hex: string): string {
  const bytes: number[] = [];
  for (let word = 0; word < 4; word += 1) {
    const w = hex.slice(word * 8, word * 8 + 8);
    bytes.push(...[6, 4, 2, 0].map((i) => parseInt(w.slice(i, i + 2), 16)));
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  return groups.join(':');
}

/** Loopback: 127.0.0.0/8, ::1, or an IPv4-mapped 127.x address. */
function isLoopback(address: string): boolean {
  if (address.startsWith('127.')) return true;
  if (address === '0:0:0:0:0:0:0:1') return true;
  const mapped = /^0:0:0:0:0:ffff:(7f[0-9a-f]{2}):[0-9a-f]+$/.exec(address);
  return mapped !== null;
}

/** The process and all its descendants, from the ppid field of /proc/<pid>/stat. */
async function processTree(root: number): Promise<number[]> {
  const parents = new Map<number, number>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => undefined);
    if (stat === undefined) continue;
    // The command sits in parentheses and may contain spaces; the ppid is the second field after it.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    parents.set(Number(entry), ppid);
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i += 1) {
    for (const [pid, ppid] of parents) if (ppid === tree[i]) tree.push(pid);
  }
  return tree;
}

/** Every TCP socket in LISTEN state held by one of `pids`, read from each process's own namespace. */
async function listeningSockets(pids: readonly number[]): Promise<ListeningSocket[]> {
  const out: ListeningSocket[] = [];
  for (const pid of pids) {
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    const inodes = new Set<string>();
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m?.[1] !== undefined) inodes.add(m[1]);
    }
    if (inodes.size === 0) continue;
    const netns = await readlink(`/proc/${pid}/ns/net`);
    const command = (await readFile(`/proc/${pid}/comm`, 'utf8')).trim();
    for (const [file, decode] of [['tcp', ipv4], ['tcp6', ipv6]] as const) {
      const table = await readFile(`/proc/${pid}/net/${file}`, 'utf8').catch(() => '');
      for (const line of table.split('\n').slice(1)) {
        const fields = line.trim().split(/\s+/);
        // local_address is fields[1] (ADDR:PORT), st is fields[3] (0A = LISTEN), inode is fields[9].
        if (fields.length < 10 || fields[3] !== '0A' || !inodes.has(fields[9] ?? '')) continue;
        const [addrHex, portHex] = (fields[1] ?? '').split(':');
        out.push({ pid, command, address: decode(addrHex ?? ''), port: parseInt(portHex ?? '0', 16), netns });
      }
    }
  }
  return out;
}

/** The interfaces of a process's network namespace, from /proc/<pid>/net/dev. */
async function interfaces(pid: number): Promise<string[]> {
  const dev = await readFile(`/proc/${pid}/net/dev`, 'utf8');
  return dev.split('\n').slice(2).map((l) => l.split(':')[0]?.trim() ?? '').filter((n) => n.length > 0);
}

const onLinux = process.platform === 'linux' ? describe : describe.skip;

onLinux('local stack: listening sockets', () => {
  let t: TestStack;

  beforeAll(async () => {
    t = await startTestStack({ functionEnv: { POWERTOOLS_LOG_LEVEL: 'WARN' } });
  }, 120_000);

  afterAll(async () => {
    await t?.cleanup();
  }, 60_000);

  it('listens only where nothing beyond this machine can connect', async () => {
    const ownNetns = await readlink('/proc/self/ns/net');
    const sockets = await listeningSockets(await processTree(process.pid));

    const exposed: ListeningSocket[] = [];
    for (const socket of sockets) {
      if (isLoopback(socket.address)) continue;
      // A wildcard bind is confined only inside a namespace of its own that has nothing but loopback.
      if (socket.netns !== ownNetns && (await interfaces(socket.pid)).every((name) => name === 'lo')) continue;
      exposed.push(socket);
    }
    expect(exposed).toEqual([]);

    // Every server of the stack was seen, on loopback of this machine's own namespace, so the
    // check above covered them (an empty list would prove nothing).
    const { mqttPort, wsPort, dynamoEndpoint, iotDataEndpoint, sqsEndpoint } = t.stack.endpoints;
    const expected = [mqttPort, wsPort, ...[dynamoEndpoint, iotDataEndpoint, sqsEndpoint].map((u) => Number(new URL(u).port))];
    const onHostLoopback = sockets.filter((s) => s.netns === ownNetns && isLoopback(s.address)).map((s) => s.port);
    expect(onHostLoopback).toEqual(expect.arrayContaining(expected));
  }, 60_000);

  it('runs DynamoDB Local in a namespace whose only interface is loopback', async () => {
    expect(t.stack.dynamo.confinement).toEqual({ kind: 'network-namespace' });
    const ownNetns = await readlink('/proc/self/ns/net');
    const sockets = await listeningSockets(await processTree(process.pid));
    const java = sockets.filter((s) => s.command === 'java');
    expect(java.length).toBeGreaterThan(0);
    for (const socket of java) {
      expect(socket.netns).not.toBe(ownNetns);
      expect(await interfaces(socket.pid)).toEqual(['lo']);
    }
  }, 60_000);
});
