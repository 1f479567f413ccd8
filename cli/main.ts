/**
 * The `porchlight` command. `npm start` runs `porchlight demo`.
 *
 *   porchlight up                          start the local stack (Ctrl-C to stop)
 *   porchlight demo [--keep]               up + sample agents + one sample task, end to end
 *   porchlight agents [--json]             the live registry as a table
 *   porchlight submit <file.json>          submit a task request, wait, print the result
 *   porchlight watch <taskId>              follow a task to its result
 *   porchlight certs issue <id> [--kind agent|client|observer|orchestrator] [--accredit gdpr,…] [--pool render,…]
 */
import { parseArgs } from 'node:util';
import { PorchlightError } from '../core/errors';
import { agents } from './commands/agents';
import { certsIssue } from './commands/certs';
import { demo } from './commands/demo';
import { submit, watch } from './commands/tasks';
import { up } from './commands/up';
import { DEFAULT_STATE_DIR } from './stack-file';

const USAGE = `usage: porchlight <command> [options]

commands:
  up                         start the local stack and keep it running (Ctrl-C to stop)
  demo [--keep]              start the stack and the sample agents, run a sample task end to end
  agents [--json]            list the agents in the registry
  submit <file.json>         submit a task request, wait for and print its result
  watch <taskId> [--root tasks|patient-data]
                             follow a task until it finishes
  certs issue <id> [--kind agent|client|observer|orchestrator] [--accredit gdpr,ISO27001] [--pool render]
                             issue a certificate from the local CA (CN = id)

options:
  --state-dir <dir>          where the local stack keeps its state (default .porchlight)
  --timeout <seconds>        how long submit/watch/demo wait for a result (default 120)
  -h, --help                 show this help`;

/** Runs the CLI with `argv` (without node and script); resolves to the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      'state-dir': { type: 'string', default: DEFAULT_STATE_DIR },
      timeout: { type: 'string', default: '120' },
      keep: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      kind: { type: 'string', default: 'agent' },
      accredit: { type: 'string', default: '' },
      pool: { type: 'string', default: '' },
      root: { type: 'string', default: 'tasks' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [command, ...rest] = positionals;
  if (values.help || command === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return command === undefined && !values.help ? 2 : 0;
  }
  const stateDir = values['state-dir'];
  const timeoutSeconds = Number(values.timeout);
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) throw new UsageError(`--timeout must be a positive number of seconds; got "${values.timeout}"`);
  const timeoutMs = timeoutSeconds * 1000;

  switch (command) {
    case 'up':
      return up({ stateDir });
    case 'demo':
      return demo({ stateDir, keep: values.keep, timeoutMs });
    case 'agents':
      return agents({ stateDir, json: values.json });
    case 'submit':
      if (rest[0] === undefined) throw new UsageError('submit needs a request file: porchlight submit <file.json>');
      return submit(rest[0], { stateDir, timeoutMs });
    case 'watch':
      if (rest[0] === undefined) throw new UsageError('watch needs a task id: porchlight watch <taskId>');
      return watch(rest[0], { stateDir, timeoutMs, taskRoot: values.root });
    case 'certs': {
      const [sub, identity] = rest;
      if (sub !== 'issue' || identity === undefined) throw new UsageError('usage: porchlight certs issue <id> [--kind agent] [--accredit gdpr] [--pool render]');
      const list = (text: string): string[] => text.split(',').map((s) => s.trim()).filter((s) => s !== '');
      return certsIssue(identity, { stateDir, kind: values.kind, accredit: list(values.accredit), pools: list(values.pool) });
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

/** A mistake in how the command was called. */
class UsageError extends Error {
  override readonly name = 'UsageError';
}

if (require.main === module) {
  // The SDK warns on every process that Node 20 support ends in 2027; the README states the
  // supported versions, so keep the demo's output about the demo.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      if (err instanceof UsageError) {
        process.stderr.write(`porchlight: ${err.message}\n\n${USAGE}\n`);
        process.exit(2);
      }
      const known = err instanceof PorchlightError || (err instanceof Error && err.name === 'MissingDependencyError');
      process.stderr.write(`porchlight: ${err instanceof Error ? err.message : String(err)}\n`);
      if (!known && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
      process.exit(1);
    },
  );
}
