/**
 * `planner`: proposal rules (`{root}/+/proposal/+`) → Orchestrator.onProposal; pool claim rules
 * (`{root}/+/claim/+/+`) → Orchestrator.onClaim, routed by topic kind. Any other topic goes to
 * onProposal, which refuses it with `invalid-topic`.
 */
import { ruleHandler, type RuleHandler } from '../lib/rule-handler';
import { topicKind } from '../lib/rule-event';
import { createRuntime } from '../lib/wiring';
import { config } from './config';

const runtime = createRuntime(config);

/** Stores a bid or decline (planning once every eligible agent has answered), or applies a pool member's claim. */
export const handler: RuleHandler = ruleHandler(runtime.obs, (msg) => {
  switch (topicKind(msg.topic)) {
    case 'task-claim': return runtime.orchestrator.onClaim(msg);
    default: return runtime.orchestrator.onProposal(msg);
  }
});
