/**
 * `progress`: output and cancel rules (`{root}/+/output/+`, `{root}/+/cancel`) → onOutput / onCancel,
 * routed by topic kind. Any other topic goes to onOutput, which refuses it with `invalid-topic`.
 */
import { ruleHandler, type RuleHandler } from '../lib/rule-handler';
import { topicKind } from '../lib/rule-event';
import { createRuntime } from '../lib/wiring';
import { config } from './config';

const { obs, orchestrator } = createRuntime(config);

/** Applies a fenced step output, or a cancel carrying the task's secret. */
export const handler: RuleHandler = ruleHandler(obs, (msg) =>
  topicKind(msg.topic) === 'task-cancel' ? orchestrator.onCancel(msg) : orchestrator.onOutput(msg),
);
