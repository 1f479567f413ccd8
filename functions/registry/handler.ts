/**
 * `registry`: résumé, status and telemetry rules (`agents/+/resume|status|telemetry`) →
 * RegistryService, routed by topic kind. Any other topic goes to onResume, which refuses it.
 */
import type { HandleOutcome } from '../../core/orchestrator';
import type { InboundMessage } from '../../core/rule-event';
import { ruleHandler, type RuleHandler } from '../lib/rule-handler';
import { topicKind } from '../lib/rule-event';
import { createRuntime } from '../lib/wiring';
import { config } from './config';

const { obs, registryService } = createRuntime(config);

function route(msg: InboundMessage): Promise<HandleOutcome> {
  switch (topicKind(msg.topic)) {
    case 'agent-status': return registryService.onStatus(msg);
    case 'agent-telemetry': return registryService.onTelemetry(msg);
    default: return registryService.onResume(msg);
  }
}

/** Keeps the agent registry of record in step with what agents publish. */
export const handler: RuleHandler = ruleHandler(obs, route);
