import { Template } from 'aws-cdk-lib/assertions';
import { createApp } from '../../infra/app';

/** One synthesized app per test file: bundling seven functions is the slow part. */
export function synthOnce(): { stateful: Template; service: Template; app: ReturnType<typeof createApp> } {
  const app = createApp();
  return { app, stateful: Template.fromStack(app.stateful), service: Template.fromStack(app.service) };
}

/** Joins a CloudFormation `Fn::Join` (or plain string) into text, writing tokens as `<Ref>`. */
export function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if (Array.isArray(o['Fn::Join'])) {
      const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
      return parts.map(flatten).join(sep);
    }
    if (typeof o.Ref === 'string') return `<${o.Ref}>`;
    if (Array.isArray(o['Fn::GetAtt'])) return `<${(o['Fn::GetAtt'] as string[]).join('.')}>`;
    if (o['Fn::ImportValue'] !== undefined) return `<import:${flatten(o['Fn::ImportValue'])}>`;
  }
  return JSON.stringify(value);
}

/** Every IAM statement of the functions' roles, flattened, by function name. */
export function functionStatements(service: Template): Record<string, { Action: string[]; Resource: string[]; Effect: string }[]> {
  const out: Record<string, { Action: string[]; Resource: string[]; Effect: string }[]> = {};
  for (const [logicalId, res] of Object.entries(service.findResources('AWS::IAM::Policy'))) {
    const m = /^Fn(\w+?)Function/.exec(logicalId);
    if (!m?.[1]) continue;
    const fn = m[1];
    const stmts = (res.Properties.PolicyDocument.Statement as { Action: string | string[]; Resource: unknown; Effect: string }[]).map((s) => ({
      Effect: s.Effect,
      Action: ([] as string[]).concat(s.Action),
      Resource: ([] as unknown[]).concat(s.Resource).map(flatten),
    }));
    out[fn] = [...(out[fn] ?? []), ...stmts];
  }
  return out;
}
