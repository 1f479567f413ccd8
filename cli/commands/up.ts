/**
 * `porchlight up`: starts the local stack and keeps it running until Ctrl-C, admitting
 * identities issued meanwhile by `porchlight certs issue`.
 */
import { streamLog } from '../../local/log';
import { applyNewIdentities, startStackForCli, stackInfo, stopStackForCli } from '../session';

/** Runs the stack in the foreground; resolves to the exit code once stopped. */
export async function up(options: { stateDir: string; out?: (line: string) => void }): Promise<number> {
  const out = options.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const log = streamLog('stack');
  const stack = await startStackForCli(options.stateDir, log);
  const info = stackInfo(stack);
  const watcher = applyNewIdentities(stack, log);
  out(`Porchlight local stack is up (Ctrl-C to stop)
  broker    mqtts://${info.mqttHost}:${info.mqttPort}   (mutual TLS; CA ${info.caPath})
  browser   ws://127.0.0.1:${info.wsPort}   (read-only: user ${stack.observer.username}, password ${stack.observer.password})
  database  ${info.dynamoEndpoint}   (table ${info.tableName})
  logs      ${stack.paths.logsDir}
Run agents with certificates from \`npm run porchlight -- certs issue <id> --kind agent\`.`);
  await new Promise<void>((done) => {
    process.once('SIGINT', () => done());
    process.once('SIGTERM', () => done());
  });
  out('Stopping…');
  watcher.close();
  await stopStackForCli(stack);
  return 0;
}
