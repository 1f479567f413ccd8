/**
 * `progress`: output, progress and cancel rules (`{root}/+/output/+/+`, `{root}/+/progress/+/+`,
 * `clients/+/{root}/+/cancel`) → onOutput / onProgress / onCancel, routed by topic kind. Any other
 * topic goes to onOutput, which refuses it with `invalid-topic`.
 */
import { ruleHandler, type RuleHandler } from '../lib/rule-handler';
import { topicKind } from '../lib/rule-event';
import { createRuntime } from '../lib/wiring';
import { config } from './config';

const { obs, orchestrator } = createRuntime(config);

/** Applies a fenced step output, relays an assignee's progress, or applies a cancel carrying the task's secret. */
export const handler: RuleHandler = ruleHandler(obs, (msg) => {
  switch (topicKind(msg.topic)) {
    case 'client-cancel': return orchestrator.onCancel(msg);
    case 'task-progress': return orchestrator.onProgress(msg);
    default: return orchestrator.onOutput(msg);
  }
});
