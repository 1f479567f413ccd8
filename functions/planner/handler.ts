/**
 * `planner`: proposal rules (`{root}/+/proposal/+`) → Orchestrator.onProposal.
 */
import { ruleHandler, type RuleHandler } from '../lib/rule-handler';
import { createRuntime } from '../lib/wiring';
import { config } from './config';

const runtime = createRuntime(config);

/** Stores a bid or decline; plans once every eligible agent has answered. */
export const handler: RuleHandler = ruleHandler(runtime.obs, (msg) => runtime.orchestrator.onProposal(msg));
