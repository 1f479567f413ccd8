/**
 * A small evaluator for the subset of the AWS policy language Porchlight's IoT policies and
 * Lambda roles use, so the probe matrix can be decided against the synthesized documents without
 * an AWS account.
 *
 * Semantics (AWS IAM policy evaluation logic and the AWS IoT Core policy reference):
 * - The request is allowed when at least one `Allow` statement matches and no `Deny` statement
 *   matches: an explicit deny in any attached document wins, and nothing matching is an implicit
 *   deny. The documents attached to one principal are evaluated as their union.
 * - `Action` matches case-insensitively with `*` and `?` wildcards (`iot:*`).
 * - `Resource` matches case-sensitively with `*` (any run of characters, `/` included) and `?`
 *   (one character). MQTT's `+` and `#` are literal characters here.
 * - Policy variables `${name}` are substituted from the request context before matching; the
 *   escapes `${*}`, `${?}` and `${$}` stand for literal `*`, `?` and `$`. A variable the context
 *   cannot resolve makes that resource match nothing (fails closed), as AWS documents for thing
 *   policy variables: "this variable won't be resolved and will result in an access denied error".
 * - `Condition` supports the operators these policies could plausibly use (`Bool`,
 *   `StringEquals`, `StringNotEquals`, `StringLike`, `StringNotLike`, each optionally
 *   `…IfExists`); a key missing from the context fails the condition unless `IfExists`.
 * - Anything else (`NotAction`, `NotResource`, `Principal`, unknown operators) throws, so a
 *   document this evaluator does not understand is never silently misjudged.
 */

/** One statement, as it appears in a policy document (single values or lists). */
export interface PolicyStatementJson {
  readonly Effect: 'Allow' | 'Deny';
  readonly Action: string | readonly string[];
  readonly Resource: string | readonly string[];
  readonly Condition?: Readonly<Record<string, Readonly<Record<string, string | boolean | readonly (string | boolean)[]>>>>;
  readonly Sid?: string;
}

/** A policy document (IoT policy or IAM identity policy). */
export interface PolicyDocumentJson {
  readonly Version?: string;
  readonly Statement: PolicyStatementJson | readonly PolicyStatementJson[];
}

/** A named document, so a decision can say which policy decided it. */
export interface NamedPolicy {
  readonly name: string;
  readonly document: PolicyDocumentJson;
}

/** One authorisation question. */
export interface PolicyRequest {
  /** e.g. `iot:Publish` */
  readonly action: string;
  /** A full ARN, e.g. `arn:aws:iot:eu-west-1:123456789012:topic/tasks/t1/status`. */
  readonly resource: string;
  /** Values of policy variables and condition keys, e.g. `iot:Connection.Thing.ThingName`; `undefined` = not available. */
  readonly context?: Readonly<Record<string, string | undefined>>;
}

/** The answer, with the statements that decided it. */
export interface PolicyDecision {
  readonly decision: 'allow' | 'deny';
  /** `explicit-deny`, `allow` or `implicit-deny`. */
  readonly reason: 'explicit-deny' | 'allow' | 'implicit-deny';
  /** `policy#statementIndex` of every matching statement of the deciding effect. */
  readonly matched: readonly string[];
}

/** A document uses a part of the policy language this evaluator does not implement. */
export class UnsupportedPolicyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedPolicyError';
  }
}

const SUPPORTED_KEYS = new Set(['Effect', 'Action', 'Resource', 'Condition', 'Sid']);

/** A policy element that may be a single value or a list, as a list. */
export function list<T>(value: T | readonly T[]): readonly T[] {
  return Array.isArray(value) ? (value as readonly T[]) : [value as T];
}

function escapeRegExp(text: string): string {
  return text.replace(/[.+^${}()|[\]\\*?]/g, '\\$&');
}

/** `*` and `?` wildcards over the whole string. */
function wildcardRegExp(pattern: string, flags = ''): RegExp {
  let source = '';
  for (const ch of pattern) source += ch === '*' ? '.*' : ch === '?' ? '.' : escapeRegExp(ch);
  return new RegExp(`^${source}$`, `s${flags}`);
}

/** Marker for a substituted literal wildcard (`${*}`), kept apart from pattern wildcards. */
const LITERAL = '\u0000';

/**
 * Substitutes `${…}` variables; returns undefined when one cannot be resolved. Literal `*`/`?`
 * produced by the escapes or by a variable's value are marked so they only match themselves.
 */
export function substituteVariables(pattern: string, context: Readonly<Record<string, string | undefined>>): string | undefined {
  let unresolved = false;
  const out = pattern.replace(/\$\{([^}]*)\}/g, (_m, name: string) => {
    if (name === '*' || name === '?' || name === '$') return `${LITERAL}${name}`;
    const value = context[name];
    if (value === undefined) {
      unresolved = true;
      return '';
    }
    return value.replace(/[*?]/g, (c) => `${LITERAL}${c}`);
  });
  return unresolved ? undefined : out;
}

/** True when `value` matches the resource `pattern` (after substitution). */
export function resourceMatches(pattern: string, value: string, context: Readonly<Record<string, string | undefined>> = {}): boolean {
  const substituted = substituteVariables(pattern, context);
  if (substituted === undefined) return false;
  let source = '';
  for (let i = 0; i < substituted.length; i += 1) {
    const ch = substituted[i] as string;
    if (ch === LITERAL) {
      i += 1;
      source += escapeRegExp(substituted[i] as string);
    } else source += ch === '*' ? '.*' : ch === '?' ? '.' : escapeRegExp(ch);
  }
  return new RegExp(`^${source}$`, 's').test(value);
}

/** True when `action` matches the statement's action pattern (case-insensitive). */
export function actionMatches(pattern: string, action: string): boolean {
  return wildcardRegExp(pattern, 'i').test(action);
}

function conditionHolds(
  condition: NonNullable<PolicyStatementJson['Condition']>,
  context: Readonly<Record<string, string | undefined>>,
  where: string,
): boolean {
  for (const [rawOperator, block] of Object.entries(condition)) {
    const ifExists = rawOperator.endsWith('IfExists');
    const operator = ifExists ? rawOperator.slice(0, -'IfExists'.length) : rawOperator;
    for (const [key, expected] of Object.entries(block)) {
      const actual = context[key];
      if (actual === undefined) {
        if (ifExists) continue;
        return false;
      }
      const values = list(expected).map(String);
      let ok: boolean;
      switch (operator) {
        case 'Bool':
          ok = values.some((v) => v.toLowerCase() === actual.toLowerCase());
          break;
        case 'StringEquals':
          ok = values.includes(actual);
          break;
        case 'StringNotEquals':
          ok = !values.includes(actual);
          break;
        case 'StringLike':
          ok = values.some((v) => resourceMatches(v, actual, context));
          break;
        case 'StringNotLike':
          ok = !values.some((v) => resourceMatches(v, actual, context));
          break;
        default:
          throw new UnsupportedPolicyError(`${where}: condition operator ${rawOperator} is not supported`);
      }
      if (!ok) return false;
    }
  }
  return true;
}

/** Decides `request` against the union of `policies`. */
export function evaluatePolicies(policies: readonly NamedPolicy[], request: PolicyRequest): PolicyDecision {
  const context = request.context ?? {};
  const allows: string[] = [];
  const denies: string[] = [];
  for (const policy of policies) {
    list(policy.document.Statement).forEach((st, i) => {
      const where = `${policy.name}#${i}`;
      for (const key of Object.keys(st)) {
        if (!SUPPORTED_KEYS.has(key)) throw new UnsupportedPolicyError(`${where}: statement element ${key} is not supported`);
      }
      if (st.Effect !== 'Allow' && st.Effect !== 'Deny') throw new UnsupportedPolicyError(`${where}: Effect ${String(st.Effect)}`);
      if (!list(st.Action).some((a) => actionMatches(a, request.action))) return;
      if (!list(st.Resource).some((r) => resourceMatches(r, request.resource, context))) return;
      if (st.Condition !== undefined && !conditionHolds(st.Condition, context, where)) return;
      (st.Effect === 'Deny' ? denies : allows).push(where);
    });
  }
  if (denies.length > 0) return { decision: 'deny', reason: 'explicit-deny', matched: denies };
  if (allows.length > 0) return { decision: 'allow', reason: 'allow', matched: allows };
  return { decision: 'deny', reason: 'implicit-deny', matched: [] };
}
