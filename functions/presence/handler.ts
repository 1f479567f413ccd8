/**
 * `presence`: the IoT Core lifecycle rule (`$aws/events/presence/+/+`, AWS only) →
 * RegistryService.onPresence.
 */
import { ruleHandler, type RuleHandler } from '../lib/rule-handler';
import { createRuntime } from '../lib/wiring';
import { config } from './config';

const runtime = createRuntime(config);

/** Marks a disconnected agent offline and re-assigns its live steps. */
export const handler: RuleHandler = ruleHandler(runtime.obs, (msg) => runtime.registryService.onPresence(msg));
