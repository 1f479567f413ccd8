/**
 * `porchlight agents`: the registry of record (DynamoDB, fed by the résumé/status/telemetry
 * rules) as a table, with what each agent claims beside what the orchestrator measured of it. It reads the table, not retained MQTT messages, because AWS IoT Core does
 * not deliver retained messages to wildcard subscriptions.
 */
import { agentsTable } from '../render';
import { localRegistry } from '../session';
import { readStackFile } from '../stack-file';

/** Prints the registry; `json` prints the records instead of a table. */
export async function agents(options: { stateDir: string; json: boolean; out?: (line: string) => void }): Promise<number> {
  const out = options.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const { registry, close } = localRegistry(readStackFile(options.stateDir));
  try {
    const records = await registry.list();
    const measured = await registry.measurements(records.map((r) => r.agentId));
    for (const record of records) {
      const m = measured.get(record.agentId);
      if (m !== undefined) record.measured = m;
    }
    out(options.json ? JSON.stringify(records, null, 2) : agentsTable(records));
    return 0;
  } finally {
    close();
  }
}
