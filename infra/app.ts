/**
 * The Porchlight CDK app: `npx cdk synth`. Stacks are environment-agnostic (no lookups), so
 * synthesis needs no AWS credentials; cdk-nag's AwsSolutions pack runs over the whole app.
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ServiceStack } from './stacks/service-stack';
import { StatefulStack } from './stacks/stateful-stack';

/** The two stacks of one Porchlight deployment. */
export interface PorchlightStacks {
  readonly stateful: StatefulStack;
  readonly service: ServiceStack;
}

/** The `pools` context: a comma-separated string (`-c pools=render,gpu`) or a list of names. */
export function poolsSetting(value: unknown): string[] {
  if (value === undefined) return [];
  const list = typeof value === 'string' ? value.split(',') : value;
  if (!Array.isArray(list) || !list.every((p): p is string => typeof p === 'string')) throw new Error('context pools must be a comma-separated string or a list of pool names');
  return [...new Set(list.map((p) => p.trim()).filter((p) => p !== ''))];
}

/**
 * Adds Porchlight's stacks to `app` (named `<prefix>-stateful`, `<prefix>-service`). Context
 * `alarmEmail` (`npx cdk deploy -c alarmEmail=ops@example.com`) subscribes an address to the alarms;
 * `pools` (`-c pools=render,gpu`) creates a thing group per pool (`pool-<name>`).
 */
export function buildPorchlight(app: App, prefix = 'Porchlight'): PorchlightStacks {
  const alarmEmail: unknown = app.node.tryGetContext('alarmEmail');
  if (alarmEmail !== undefined && typeof alarmEmail !== 'string') throw new Error('context alarmEmail must be a string');
  const pools = poolsSetting(app.node.tryGetContext('pools'));
  const stateful = new StatefulStack(app, `${prefix}-stateful`, {
    description: 'Porchlight: table, timer queue, IoT policies, accreditation and pool groups',
    ...(pools.length > 0 ? { policies: { pools } } : {}),
  });
  const service: ServiceStack = new ServiceStack(app, `${prefix}-service`, {
    description: 'Porchlight: orchestrator functions, IoT rules, schedule and alarms',
    tableName: stateful.tableName,
    timerQueue: stateful.timerQueue,
    timerDeadLetterQueue: stateful.timerDeadLetterQueue,
    fencingKey: stateful.fencingKey,
    ...(alarmEmail !== undefined ? { alarmEmail } : {}),
  });
  service.addStackDependency(stateful, 'the service imports the table by name');
  return { stateful, service };
}

/** Builds the app with cdk-nag applied; the CLI entry point and the infra tests both use it. */
export function createApp(): { app: App } & PorchlightStacks {
  // Pinned so synthesis is deterministic and quiet: the stateful stack's exports are protected.
  const app = new App({ postCliContext: { '@aws-cdk/core:defaultCrossStackReferences': 'strong' } });
  const stacks = buildPorchlight(app);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  return { app, ...stacks };
}

if (require.main === module) {
  createApp().app.synth();
}
