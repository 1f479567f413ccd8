/**
 * Each local function's own AWS credentials, standing in for its Lambda role: the function
 * invoker gives every execution environment the access key of its function, the SDK signs each
 * request with it (SigV4 names the key in the `Authorization` header), and the data-plane shim
 * looks the key up to know which function is publishing and what that function's IAM grant
 * allows — the grant CDK renders from the same publication catalogue. So a publish outside a
 * function's grant is refused locally with 403, as IoT Core refuses it on AWS.
 *
 * The keys are not secrets (the shim listens on loopback only and does not verify signatures);
 * they identify, they do not authenticate.
 */
import type { Publication } from '../core/publications';
import { FUNCTION_NAMES, functionPublications, type FunctionName } from '../infra/rules/catalogue';

const ACCESS_KEY_PREFIX = 'LOCALFN';

/** AWS credentials. */
export interface LocalCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

/** The credentials `functionName` runs with locally. Throws for a name that is not a function. */
export function localFunctionCredentials(functionName: string): LocalCredentials {
  if (!(FUNCTION_NAMES as readonly string[]).includes(functionName)) throw new Error(`unknown function "${functionName}"; expected one of ${FUNCTION_NAMES.join(', ')}`);
  return { accessKeyId: `${ACCESS_KEY_PREFIX}${functionName}`, secretAccessKey: 'local' };
}

/** The function an access key belongs to, or undefined. */
export function functionOfAccessKey(accessKeyId: string): FunctionName | undefined {
  if (!accessKeyId.startsWith(ACCESS_KEY_PREFIX)) return undefined;
  const name = accessKeyId.slice(ACCESS_KEY_PREFIX.length);
  return (FUNCTION_NAMES as readonly string[]).includes(name) ? (name as FunctionName) : undefined;
}

/** The access key a SigV4 `Authorization` header names (`… Credential=<key>/<date>/<region>/<service>/aws4_request, …`). */
export function accessKeyOfAuthorization(header: string | undefined): string | undefined {
  return header === undefined ? undefined : /Credential=([^/,\s]+)\//.exec(header)?.[1];
}

/** What a caller may publish, as the data-plane shim checks it. */
export interface PublishGrant {
  /** Who is publishing, for error messages. */
  readonly caller: string;
  readonly publications: readonly Publication[];
}

/** The publish grant of the function whose access key signed a request; undefined for any other key. */
export function functionPublishGrant(accessKeyId: string | undefined): PublishGrant | undefined {
  const fn = accessKeyId === undefined ? undefined : functionOfAccessKey(accessKeyId);
  return fn === undefined ? undefined : { caller: `function ${fn}`, publications: functionPublications(fn) };
}
