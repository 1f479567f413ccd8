/**
 * The IoT rule catalogue as data: CDK builds one `CfnTopicRule` per entry and the local rules
 * engine subscribes to the same filters and builds the same event, so the two cannot drift.
 */
import * as path from 'node:path';
import { TASK_ROOTS } from '../../core/data-classes';
import { publicationsOf, type EntryPoint, type Publication } from '../../core/publications';
import { filters } from '../../core/topics';

/** The function a rule invokes. */
export type RuleTarget = 'intake' | 'planner' | 'progress' | 'registry' | 'presence';

/** One topic rule. */
export interface RuleDefinition {
  /** IoT rule name: `[a-zA-Z0-9_]+`. */
  name: string;
  /** The MQTT topic filter in the rule's FROM clause. */
  topicFilter: string;
  target: RuleTarget;
  /** Extra `topic(n)` selections (1-based), beyond the fields every rule selects. */
  topicFields: readonly { index: number; as: string }[];
  description: string;
  /** True for rules that only exist on AWS (Mosquitto has no lifecycle events). */
  awsOnly?: boolean;
}

/** Every Lambda function of the service, rule targets first. */
export const FUNCTION_NAMES = ['intake', 'planner', 'progress', 'registry', 'presence', 'timer', 'sweeper'] as const;
/** A function name. */
export type FunctionName = (typeof FUNCTION_NAMES)[number];

/**
 * The core entry points each function's handler calls (functions/<name>/handler.ts); what they
 * may publish is core's publication catalogue (core/publications.ts). A handler that starts
 * calling another entry point must be listed here, or its publishes are refused on AWS (no IAM
 * grant) and locally (the data-plane shim checks the same grant).
 */
export const FUNCTION_ENTRY_POINTS: Readonly<Record<FunctionName, readonly EntryPoint[]>> = {
  intake: ['orchestrator.onRequest'],
  planner: ['orchestrator.onProposal', 'orchestrator.onClaim'],
  progress: ['orchestrator.onOutput', 'orchestrator.onProgress', 'orchestrator.onCancel'],
  registry: ['registry.onResume', 'registry.onStatus', 'registry.onTelemetry'],
  presence: ['registry.onPresence'],
  timer: ['orchestrator.onTimer'],
  sweeper: ['orchestrator.sweep'],
};

/** What a function may publish: the catalogue entries of the core entry points its handler calls. */
export function functionPublications(fn: FunctionName): Publication[] {
  const entryPoints = FUNCTION_ENTRY_POINTS[fn] as readonly EntryPoint[] | undefined;
  if (entryPoints === undefined) throw new Error(`unknown function "${fn}"; expected one of ${FUNCTION_NAMES.join(', ')}`);
  return publicationsOf(entryPoints);
}

const RULE_NAME = /^[a-zA-Z0-9_]{1,128}$/;
const TASK_ID_FIELD = [{ index: 2, as: 'taskId' }] as const;

function ruleName(...parts: string[]): string {
  const name = parts.map((p) => p.replace(/[^a-zA-Z0-9]+/g, '_')).join('_');
  if (!RULE_NAME.test(name)) throw new Error(`rule name "${name}" is not a valid IoT rule name`);
  return `porchlight_${name}`;
}

function taskRules(root: string): RuleDefinition[] {
  const client = [{ index: 2, as: 'tenant' }, { index: 4, as: 'taskId' }] as const;
  const handIn = [...TASK_ID_FIELD, { index: 4, as: 'stepId' }, { index: 5, as: 'agentId' }] as const;
  return [
    { name: ruleName(root, 'request'), topicFilter: filters.clientRequests(root), target: 'intake', topicFields: client, description: `clients' task requests under ${root}/ → intake` },
    { name: ruleName(root, 'proposal'), topicFilter: filters.proposals(root), target: 'planner', topicFields: [...TASK_ID_FIELD, { index: 4, as: 'agentId' }], description: `proposals under ${root}/ → planner` },
    { name: ruleName(root, 'claim'), topicFilter: filters.claims(root), target: 'planner', topicFields: handIn, description: `pool members' claims of offered steps under ${root}/ → planner` },
    { name: ruleName(root, 'output'), topicFilter: filters.outputs(root), target: 'progress', topicFields: handIn, description: `step outputs handed in under ${root}/ → progress` },
    { name: ruleName(root, 'progress'), topicFilter: filters.progress(root), target: 'progress', topicFields: handIn, description: `step progress handed in under ${root}/ → progress (relayed to the owner)` },
    { name: ruleName(root, 'cancel'), topicFilter: filters.clientCancels(root), target: 'progress', topicFields: client, description: `clients' cancellations under ${root}/ → progress` },
  ];
}

/** Every rule: six per task root, three for the agent tree, and the AWS lifecycle rule. */
export const RULES: readonly RuleDefinition[] = [
  ...TASK_ROOTS.flatMap(taskRules),
  { name: ruleName('agent', 'resume'), topicFilter: filters.allResumes, target: 'registry', topicFields: [{ index: 2, as: 'agentId' }], description: 'agent résumés → registry' },
  { name: ruleName('agent', 'status'), topicFilter: filters.allAgentStatus, target: 'registry', topicFields: [{ index: 2, as: 'agentId' }], description: 'agent status and last wills → registry' },
  { name: ruleName('agent', 'telemetry'), topicFilter: filters.allTelemetry, target: 'registry', topicFields: [{ index: 2, as: 'agentId' }], description: 'agent telemetry → registry' },
  {
    name: ruleName('presence'),
    topicFilter: filters.presence,
    target: 'presence',
    topicFields: [{ index: 4, as: 'event' }, { index: 5, as: 'presenceClientId' }],
    description: 'IoT Core lifecycle events (connected/disconnected) → presence',
    awsOnly: true,
  },
];

/**
 * The rule's SQL (version 2016-03-23). The payload is selected as base64 so a non-JSON payload
 * still reaches the handler and gets a specific rejection, and payload fields can never shadow
 * the envelope (core/rule-event.ts).
 */
export function ruleSql(rule: RuleDefinition): string {
  if (/['\\]/.test(rule.topicFilter)) throw new Error(`rule ${rule.name}: topic filter ${rule.topicFilter} contains a quote or backslash`);
  const fields = [
    "encode(*, 'base64') AS payload",
    'topic() AS topic',
    'clientid() AS clientId',
    'timestamp() AS receivedAt',
    ...rule.topicFields.map((f) => {
      if (!Number.isInteger(f.index) || f.index < 1 || !/^[A-Za-z][A-Za-z0-9]*$/.test(f.as)) throw new Error(`rule ${rule.name}: bad topic field ${JSON.stringify(f)}`);
      return `topic(${f.index}) AS ${f.as}`;
    }),
  ];
  return `SELECT ${fields.join(', ')} FROM '${rule.topicFilter}'`;
}

/** Absolute path of a function's handler module, `functions/<fn>/handler.ts`. */
export function handlerEntry(fn: FunctionName): string {
  if (!(FUNCTION_NAMES as readonly string[]).includes(fn)) throw new Error(`unknown function "${fn}"; expected one of ${FUNCTION_NAMES.join(', ')}`);
  return path.resolve(__dirname, '..', '..', 'functions', fn, 'handler.ts');
}
