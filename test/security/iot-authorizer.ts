/**
 * AWS IoT Core's authorisation of MQTT operations, in terms of {@link evaluatePolicies}:
 * which policy actions on which resources each operation needs (AWS IoT Core policy actions):
 *
 * | operation | needs |
 * |---|---|
 * | CONNECT with client id `c` | `iot:Connect` on `client/c` |
 * | PUBLISH to `t` | `iot:Publish` on `topic/t`; with RETAIN also `iot:RetainPublish` on `topic/t` |
 * | SUBSCRIBE to filter `f` | `iot:Subscribe` on `topicfilter/f` (the filter as sent, `$share/g/…` included) |
 * | delivery of a message on `t` | `iot:Receive` on `topic/t`, checked at every delivery, plus a granted subscription |
 *
 * Every operation after CONNECT happens on a connection, so it also needs the connect to be allowed.
 *
 * Thing policy variables: the certificate may be attached to things (AttachThingPrincipal). With
 * an exclusive association the thing is the certificate's only thing; with a non-exclusive one
 * the client id must equal the name of a thing attached to the certificate. Otherwise
 * `${iot:Connection.Thing.ThingName}` does not resolve (and fails closed) and
 * `iot:Connection.Thing.IsAttached` is `false`. `iot:Connection.Thing.ThingTypeName` is the thing
 * type the connection's thing was created with, absent when it has none (or there is no thing),
 * so a condition on it fails.
 */
import { evaluatePolicies, type NamedPolicy, type PolicyDecision } from './policy-evaluator';

/** Where ARNs point. Any fixed values do: the synthesized template's tokens are resolved to them. */
export interface ArnScope {
  readonly partition: string;
  readonly region: string;
  readonly account: string;
}

/** The scope the deployment is evaluated in. */
export const PROBE_SCOPE: ArnScope = { partition: 'aws', region: 'eu-west-1', account: '123456789012' };

/** The ARN of an IoT resource (`topic/…`, `topicfilter/…`, `client/…`, `thinggroup/…`). */
export function iotArn(scope: ArnScope, resource: string): string {
  return `arn:${scope.partition}:iot:${scope.region}:${scope.account}:${resource}`;
}

/** An MQTT connection as IoT Core sees it: who presents which certificate under which policies. */
export interface IotConnection {
  /** The client id sent in CONNECT. */
  readonly clientId: string;
  /** Things the certificate is attached to. */
  readonly certificateThings: readonly string[];
  /** @default 'non-exclusive' (the AttachThingPrincipal default) */
  readonly association?: 'exclusive' | 'non-exclusive';
  /** Every policy attached to the certificate and to the thing groups of its thing. */
  readonly policies: readonly NamedPolicy[];
  /** The thing type of each thing that has one, by thing name. @default none */
  readonly thingTypes?: Readonly<Record<string, string>>;
}

/** An MQTT operation to authorise. */
export type MqttOperation =
  | { readonly kind: 'connect' }
  | { readonly kind: 'publish'; readonly topic: string; readonly retain: boolean }
  | { readonly kind: 'subscribe'; readonly filter: string }
  | { readonly kind: 'receive'; readonly topic: string; readonly filter: string };

/** One policy check an operation needed, and its outcome. */
export interface IotCheck {
  readonly action: string;
  readonly resource: string;
  readonly result: PolicyDecision;
}

/** The outcome of an operation: allowed only when every check is. */
export interface IotAuthorization {
  readonly decision: 'allow' | 'deny';
  readonly checks: readonly IotCheck[];
}

/** The thing the connection is evaluated for, or undefined when none can be determined. */
export function connectionThing(conn: Pick<IotConnection, 'clientId' | 'certificateThings' | 'association'>): string | undefined {
  if ((conn.association ?? 'non-exclusive') === 'exclusive' && conn.certificateThings.length === 1) return conn.certificateThings[0];
  return conn.certificateThings.includes(conn.clientId) ? conn.clientId : undefined;
}

/** Policy variables and condition keys of a connection. */
export function connectionContext(conn: IotConnection): Record<string, string | undefined> {
  const thing = connectionThing(conn);
  return {
    'iot:ClientId': conn.clientId,
    'iot:Connection.Thing.ThingName': thing,
    'iot:Connection.Thing.IsAttached': thing === undefined ? 'false' : 'true',
    'iot:Connection.Thing.ThingTypeName': thing === undefined ? undefined : conn.thingTypes?.[thing],
  };
}

function decide(checks: IotCheck[]): IotAuthorization {
  return { decision: checks.every((c) => c.result.decision === 'allow') ? 'allow' : 'deny', checks };
}

/** Authorises `op` on `conn`. */
export function authorizeMqtt(conn: IotConnection, op: MqttOperation, scope: ArnScope = PROBE_SCOPE): IotAuthorization {
  const context = connectionContext(conn);
  const check = (action: string, resource: string): IotCheck => {
    const arn = iotArn(scope, resource);
    return { action, resource: arn, result: evaluatePolicies(conn.policies, { action, resource: arn, context }) };
  };
  const checks = [check('iot:Connect', `client/${conn.clientId}`)];
  switch (op.kind) {
    case 'connect':
      break;
    case 'publish':
      checks.push(check('iot:Publish', `topic/${op.topic}`));
      if (op.retain) checks.push(check('iot:RetainPublish', `topic/${op.topic}`));
      break;
    case 'subscribe':
      checks.push(check('iot:Subscribe', `topicfilter/${op.filter}`));
      break;
    case 'receive':
      checks.push(check('iot:Subscribe', `topicfilter/${op.filter}`));
      checks.push(check('iot:Receive', `topic/${op.topic}`));
      break;
  }
  return decide(checks);
}

/**
 * Authorises an IoT data-plane `Publish` (HTTPS, SigV4) by a principal holding the IAM
 * `policies`: `iot:Publish` on the topic ARN, and `iot:RetainPublish` for a retained message.
 */
export function authorizeDataPlanePublish(policies: readonly NamedPolicy[], topic: string, retain: boolean, scope: ArnScope = PROBE_SCOPE): IotAuthorization {
  const arn = iotArn(scope, `topic/${topic}`);
  const checks: IotCheck[] = [{ action: 'iot:Publish', resource: arn, result: evaluatePolicies(policies, { action: 'iot:Publish', resource: arn }) }];
  if (retain) checks.push({ action: 'iot:RetainPublish', resource: arn, result: evaluatePolicies(policies, { action: 'iot:RetainPublish', resource: arn }) });
  return decide(checks);
}

/** One line per check, for failure messages. */
export function describeAuthorization(auth: IotAuthorization): string {
  return auth.checks
    .map((c) => `${c.action} ${c.resource.replace(/^arn:[^:]*:iot:[^:]*:[^:]*:/, '')}: ${c.result.reason}${c.result.matched.length > 0 ? ` (${c.result.matched.join(', ')})` : ''}`)
    .join('; ');
}
