/**
 * The Porchlight agent SDK: define an agent (`defineAgent`) and run it (`runAgent`, or
 * `runAgentProcess` for a standalone process configured from the environment).
 */
export { defineAgent } from './define-agent';
export type { AgentDefinition, AgentDefinitionInput, ExecuteContext, ProposeContext, ProposalInput } from './define-agent';
export { AgentRuntime, runAgent } from './agent-runtime';
export type { AgentLoad, AgentRuntimeOptions, RunAgentOptions, RunningAgent } from './agent-runtime';
export { Mqtt5Bus } from './mqtt-bus';
export type { AgentConnection, InboundMessage, MqttBus, Mqtt5BusOptions, PublishOptions, SubscribeOutcome } from './mqtt-bus';
export { StepError, ExecutionAbortedError, MqttOperationError, ConnectTimeoutError } from './errors';
export type { AbortKind } from './errors';
export { createJsonLogger } from './logger';
export type { AgentLogger, LogFields, LogLevel } from './logger';
export { agentEnvironment, AGENT_ENV } from './connection-env';
export type { AgentEnvironment } from './connection-env';
export { runAgentProcess, EXIT } from './run-process';
export { faultsFromEnvironment, FAULT_ENV } from './fault-injection';
export type { RuntimeFaults } from './fault-injection';
