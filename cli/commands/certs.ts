/**
 * `porchlight certs issue <id>`: issues a certificate from the local CA (subject CN = id). A
 * running `porchlight up` notices the new identity and reloads the broker ACL.
 */
import { join, resolve } from 'node:path';
import { ConfigError } from '../../core/errors';
import { ensureCa, issueCertificate, IDENTITY_KINDS, type IdentityKind } from '../../local/ca';

/** Issues (or reuses) a certificate and prints where its files are. */
export async function certsIssue(
  identity: string,
  options: { stateDir: string; kind: string; accredit: readonly string[]; pools?: readonly string[]; out?: (line: string) => void },
): Promise<number> {
  const out = options.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const kinds = IDENTITY_KINDS.filter((k) => k !== 'broker');
  if (!(kinds as readonly string[]).includes(options.kind)) {
    throw new ConfigError(`--kind must be one of ${kinds.join(', ')}; got "${options.kind}"`);
  }
  // The CA directory inside the state dir, as startLocalBroker lays it out.
  const caDir = join(resolve(options.stateDir), 'pki');
  await ensureCa(caDir);
  const pools = options.pools ?? [];
  const cert = await issueCertificate(caDir, identity, { kind: options.kind as IdentityKind, accreditations: [...options.accredit], pools: [...pools] });
  const about = [
    ...(options.accredit.length > 0 ? [`accreditations: ${options.accredit.join(', ')}`] : []),
    ...(pools.length > 0 ? [`pools: ${pools.join(', ')}`] : []),
  ];
  out(`issued ${options.kind} certificate for ${identity}${about.length > 0 ? ` (${about.join('; ')})` : ''}
  certificate  ${cert.certPath}
  key          ${cert.keyPath}
  CA           ${cert.caPath}`);
  return 0;
}
