/**
 * The examples of docs/PROTOCOL.md that a user copies to publish (résumé, agent status, telemetry,
 * request, proposal, cancel) work as written: they validate against the wire schemas, the request
 * passes intake's checks today, and the cancel's secret matches the request's cancelHash.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AgentStatus, CancelRequest, Proposal, Resume, Telemetry, TaskRequest, parseMessage,
} from '../../../core/schemas';
import { validateProposal } from '../../../core/dag';
import { checkRequest } from '../../../core/task-machine';
import { sha256 } from '../../../functions/adapters/system';

const DOC = readFileSync(join(__dirname, '..', '..', '..', 'docs', 'PROTOCOL.md'), 'utf8');

/** The JSON blocks of the section whose heading starts with `### {name} —`, parsed. */
function examples(name: string): unknown[] {
  const start = DOC.indexOf(`### ${name} —`);
  if (start < 0) throw new Error(`docs/PROTOCOL.md has no section "### ${name} —"`);
  const next = DOC.indexOf('\n### ', start + 1);
  const section = DOC.slice(start, next < 0 ? undefined : next);
  const blocks = [...section.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]!);
  if (blocks.length === 0) throw new Error(`section ${name} has no JSON example`);
  return blocks.map((b) => JSON.parse(b) as unknown);
}

describe('docs/PROTOCOL.md examples', () => {
  it.each([
    ['Resume', Resume], ['AgentStatus', AgentStatus], ['Telemetry', Telemetry], ['CancelRequest', CancelRequest],
  ] as const)('%s validates as written', (name, schema) => {
    for (const example of examples(name)) expect(() => parseMessage(schema, example, name)).not.toThrow();
  });

  it('has a request that intake accepts now, under the root its data classes choose', () => {
    const [example] = examples('TaskRequest');
    const request = parseMessage(TaskRequest, example, 'request example');
    expect(checkRequest(request, 'tasks', Date.now())).toBe('tasks');
  });

  it('has a bid and a decline that validate, the bid as a DAG too', () => {
    const [bid, decline] = examples('Proposal').map((p) => parseMessage(Proposal, p, 'proposal example'));
    expect(bid && 'steps' in bid && (validateProposal(bid.steps), true)).toBe(true);
    expect(decline).toMatchObject({ decline: true });
  });

  it("has a cancel whose secret is the one the request's cancelHash commits to", () => {
    const [request] = examples('TaskRequest') as { cancelHash: string }[];
    const [cancel] = examples('CancelRequest') as { secret: string }[];
    expect(sha256(cancel!.secret)).toBe(request!.cancelHash);
  });
});
