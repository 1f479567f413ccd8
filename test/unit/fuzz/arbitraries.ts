/**
 * fast-check generators of hostile input for every inbound topic, shared by the fuzz suites:
 * random bytes, broken JSON, JSON of the wrong type, valid messages with one field broken,
 * prototype-pollution keys, non-JSON numbers, oversize payloads and ids that would change a
 * topic's structure. Also the assertions every suite makes about a refusal.
 */
import fc from 'fast-check';
import type { ErrorCode } from '../../../core/errors';
import { MAX_PAYLOAD_BYTES } from '../../../core/schemas';

const CODES: Record<ErrorCode, true> = {
  'invalid-id': true, 'invalid-topic': true, 'invalid-json': true, 'invalid-payload': true, 'payload-too-large': true, 'cyclic-dag': true,
  'invalid-dag': true, unsatisfiable: true, 'unknown-task': true, 'duplicate-task': true, 'version-conflict': true, 'stale-epoch': true,
  'bad-token': true, 'already-claimed': true, 'not-authorized': true, 'invalid-state': true, config: true,
};

/** Every wire error code of core/errors.ts. */
export const ERROR_CODES: ReadonlySet<string> = new Set(Object.keys(CODES));

/** Runs per property: enough to find shallow crashes, small enough for a suite under seconds. */
export const RUNS = 150;

/** A JSON path into a message, as zod prints it (`steps.0.estUsd`). */
export type FieldPath = readonly (string | number)[];

/** Text that is not JSON, or JSON only to a lenient parser (NaN, Infinity, trailing commas, single quotes). */
export const notJson: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('', ' ', '{', '}', '{"v":1,}', "{'v':1}", 'NaN', 'Infinity', '-Infinity', '{"usd":NaN}', '{"epoch":Infinity}', 'undefined',
    '\u0000', '{"a":1}}', '[1,2', 'tru', '0x10', '{"a":01}', '\uFEFF{}x'),
  fc.string({ maxLength: 40 }).filter((s) => !isJson(s)),
);

/** Random bytes, often not UTF-8. */
export const randomBytes: fc.Arbitrary<Uint8Array> = fc.uint8Array({ maxLength: 400 });

/** Well-formed JSON that is not an object (null, numbers, strings, arrays). */
export const nonObjectJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null), fc.boolean(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.string({ maxLength: 30 }), fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 5 }),
);

/** Ids that must never be spliced into a topic: empty, too long, `$`-prefixed, with `/ + #`, NUL or non-ASCII. */
export const badId: fc.Arbitrary<string> = fc.oneof(
  fc.constant(''),
  fc.constant('a'.repeat(129)),
  fc.tuple(fc.stringMatching(/^[a-z0-9]{0,6}$/), fc.constantFrom('/', '+', '#', '\u0000', ' ', 'é', '\n', '💥', '.', '*', '%', '"'), fc.stringMatching(/^[a-z0-9]{0,6}$/))
    .map(([a, c, b]) => `${a}${c}${b}`),
  fc.stringMatching(/^[a-z0-9]{0,8}$/).map((s) => `$${s}`),
);

/** Strings no artifact name accepts (names may contain '.', unlike ids). */
export const badArtifactName: fc.Arbitrary<string> = fc.constantFrom('', 'has space', 'a/b', '$x', 'é', 'a\u0000b', 'x'.repeat(129));

/** A value of a JSON type other than `original`'s (a different kind of number, string, boolean, array, object or null). */
export function wrongValue(original: unknown): fc.Arbitrary<unknown> {
  const options: fc.Arbitrary<unknown>[] = [];
  if (original !== null) options.push(fc.constant(null));
  if (typeof original !== 'string') options.push(fc.constant('12'), fc.constant('x'.repeat(5000)));
  if (typeof original !== 'number') options.push(fc.constant(1), fc.constant(-1), fc.constant(1e308));
  if (typeof original !== 'boolean') options.push(fc.boolean());
  if (!Array.isArray(original)) options.push(fc.constant([]), deepNesting);
  // Items of the wrong type too: a long array of valid items is fine where a field sets no maximum.
  if (Array.isArray(original)) options.push(fc.constant(Array.from({ length: 2000 }, () => 1)));
  if (original === null || typeof original !== 'object' || Array.isArray(original)) options.push(fc.constant({}), fc.constant({ a: 1 }));
  return fc.oneof(...options);
}

/** A field of a valid message to break, with values out of its range besides wrong types. */
export interface BreakableField {
  readonly path: FieldPath;
  /** Values of the right type that the field still refuses. */
  readonly bad?: fc.Arbitrary<unknown>;
  /** The field has a default, so leaving it out is valid. */
  readonly defaulted?: boolean;
}

/** Strings over a field's length limit. */
export function tooLong(max: number): fc.Arbitrary<string> {
  return fc.constantFrom('x'.repeat(max + 1), 'x'.repeat(max * 3));
}

/** 300 nested arrays: beyond the accepted depth, far below what JSON.parse could take. */
const deepNesting: fc.Arbitrary<unknown> = fc.constant(null).map(() => {
  let v: unknown = 1;
  for (let i = 0; i < 300; i++) v = [v];
  return v;
});

/** A copy of `message` with the value at `path` replaced by `value`. */
export function withField(message: unknown, path: FieldPath, value: unknown): unknown {
  const copy = structuredClone(message) as Record<string | number, unknown>;
  let node: Record<string | number, unknown> = copy;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  node[path[path.length - 1]!] = value;
  return copy;
}

/** A copy of `message` without the field at `path`. */
export function withoutField(message: unknown, path: FieldPath): unknown {
  const copy = structuredClone(message) as Record<string | number, unknown>;
  let node: Record<string | number, unknown> = copy;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  delete node[path[path.length - 1]!];
  return copy;
}

/**
 * The JSON text of `message` with a prototype-pollution key spliced in at the top level
 * (JSON.stringify cannot write an own `__proto__`, JSON.parse creates one).
 */
export function withPollutionKey(message: unknown): fc.Arbitrary<string> {
  return fc.constantFrom(
    '"__proto__":{"polluted":true,"isAdmin":true}',
    '"constructor":{"prototype":{"polluted":true}}',
    '"prototype":{"polluted":true}',
  ).map((extra) => {
    const text = JSON.stringify(message);
    return text === '{}' ? `{${extra}}` : `{${extra},${text.slice(1)}`;
  });
}

/** JSON text of `message` cut short somewhere. */
export function truncated(message: unknown): fc.Arbitrary<string> {
  const text = JSON.stringify(message);
  return fc.integer({ min: 0, max: text.length - 1 }).map((n) => text.slice(0, n));
}

/** A syntactically valid payload just over the 128 KB limit. */
export function oversize(message: unknown): string {
  const pad = 'x'.repeat(MAX_PAYLOAD_BYTES);
  return JSON.stringify({ ...(message as Record<string, unknown>), pad });
}

/**
 * Any payload that is not `message` as valid JSON: bytes, broken text, other JSON types,
 * truncations and oversize. Every one must be refused.
 */
export function garbage(message: unknown): fc.Arbitrary<string | Uint8Array> {
  // An empty payload is not garbage: on a retained topic it means "cleared" and has its own handling.
  return fc.oneof(
    randomBytes.filter((b) => b.byteLength > 0 && !isJson(Buffer.from(b).toString('utf8'))),
    notJson.filter((t) => t.length > 0),
    nonObjectJson.map((v) => JSON.stringify(v)),
    truncated(message).filter((t) => t.length > 0 && !isJson(t)),
    fc.constant(oversize(message)),
  );
}

/**
 * One required field of `message` given a value of the wrong type, a value out of its range, or
 * removed. The result must be refused as invalid-payload naming that field.
 */
export function brokenField(message: unknown, fields: readonly BreakableField[]): fc.Arbitrary<{ path: FieldPath; payload: unknown }> {
  return fc.constantFrom(...fields).chain(({ path, bad, defaulted }) => {
    const original = path.reduce<unknown>((node, key) => (node as Record<string | number, unknown>)[key], message);
    const values = bad !== undefined ? fc.oneof(wrongValue(original), bad) : wrongValue(original);
    if (defaulted === true) return values.map((value) => ({ path, payload: withField(message, path, value) }));
    return fc.oneof(
      { weight: 4, arbitrary: values.map((value) => ({ path, payload: withField(message, path, value) })) },
      { weight: 1, arbitrary: fc.constant({ path, payload: withoutField(message, path) }) },
    );
  });
}

/** True when `text` parses as JSON. */
export function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** The shape of a handler's refusal. */
export interface Refusal {
  readonly status: string;
  readonly code?: string;
  readonly message?: string;
}

/**
 * Asserts `outcome` is a refusal with a wire code (optionally one of `codes`) and a message that
 * says something (and names `field` when given).
 */
export function expectSpecificRefusal(outcome: Refusal, codes?: readonly string[], field?: FieldPath): void {
  expect(outcome.status).toBe('rejected');
  expect(ERROR_CODES.has(outcome.code ?? '')).toBe(true);
  if (codes !== undefined) expect(codes).toContain(outcome.code);
  expect(typeof outcome.message).toBe('string');
  expect(outcome.message!.length).toBeGreaterThan(10);
  if (field !== undefined && outcome.code === 'invalid-payload' && !/nests deeper than/.test(outcome.message!)) {
    expect(outcome.message).toContain(field.map(String).join('.'));
  }
}

/** Asserts nothing polluted Object.prototype. */
export function expectPrototypeClean(): void {
  const probe: Record<string, unknown> = {};
  expect(probe.polluted).toBeUndefined();
  expect(probe.isAdmin).toBeUndefined();
}

/**
 * Fails the suite on any unhandled promise rejection while it runs: a handler that forgets to
 * await something that rejects on bad input would otherwise pass.
 */
export function trapUnhandledRejections(): { readonly seen: unknown[] } {
  const seen: unknown[] = [];
  const onRejection = (reason: unknown): void => {
    seen.push(reason);
  };
  beforeAll(() => {
    process.on('unhandledRejection', onRejection);
  });
  afterAll(async () => {
    // Let rejections from the last property surface before checking.
    await new Promise((r) => setImmediate(r));
    process.off('unhandledRejection', onRejection);
    expect(seen).toEqual([]);
  });
  return { seen };
}
