/**
 * Busy processes beside a benchmark: each spins on the CPU until stopped, so the run sees a
 * machine whose cores are shared, as real deployments often are.
 */
import { spawn, type ChildProcess } from 'node:child_process';

/** Running busy processes. */
export interface Stress {
  /** How many were started. */
  readonly processes: number;
  /** Kills them all and waits until they have exited. */
  stop(): Promise<void>;
}

// Spins in short slices so SIGTERM is handled promptly; the busy work is a hash chain the optimiser cannot remove.
const BUSY_LOOP = `
let x = 0;
const spin = () => { const end = Date.now() + 50; while (Date.now() < end) x = (x * 31 + 7) >>> 0; setImmediate(spin); };
spin();
`;

/** Starts `n` busy processes (0 starts none). */
export function startStress(n: number): Stress {
  if (!Number.isInteger(n) || n < 0) throw new Error(`stress must be a whole number of processes, got ${n}`);
  const children: ChildProcess[] = [];
  for (let i = 0; i < n; i += 1) {
    children.push(spawn(process.execPath, ['-e', BUSY_LOOP], { stdio: 'ignore' }));
  }
  return {
    processes: n,
    stop: async () => {
      await Promise.all(children.map((child) => new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) {
          resolve();
          return;
        }
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      })));
    },
  };
}
