/**
 * `intake`: request rules (`clients/+/{root}/+/request`) → Orchestrator.onRequest.
 */
import { ruleHandler, type RuleHandler } from '../lib/rule-handler';
import { createRuntime } from '../lib/wiring';
import { config } from './config';

const runtime = createRuntime(config);

/** Validates and stores a new task, opens its proposal window; a bad request gets a `rejected` status. */
export const handler: RuleHandler = ruleHandler(runtime.obs, (msg) => runtime.orchestrator.onRequest(msg));
