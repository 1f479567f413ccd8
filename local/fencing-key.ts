/**
 * The local stack's fencing key: the secret the functions derive fencing tokens from
 * (functions/adapters/fencer.ts), which on AWS lives in Secrets Manager. Here it is a file in the
 * state directory that only the account running the stack can read.
 */
import { randomBytes } from 'node:crypto';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MIN_FENCING_KEY_LENGTH } from '../functions/adapters/fencer';

/** The key file's name inside the state directory. */
export const FENCING_KEY_FILE_NAME = 'fencing.key';

/**
 * Returns the path of the state directory's fencing key, creating it (256 random bits as 64 hex
 * characters, mode 0600) on first use. An existing key is kept, so tokens of tasks still running
 * from a previous start stay valid; one too short to be a key is refused rather than replaced.
 */
export async function ensureFencingKey(stateDir: string): Promise<string> {
  const path = join(stateDir, FENCING_KEY_FILE_NAME);
  try {
    await writeFile(path, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const existing = (await readFile(path, 'utf8')).trim();
    if (existing.length < MIN_FENCING_KEY_LENGTH) {
      throw new Error(`${path} holds ${existing.length} characters, too few for a fencing key (at least ${MIN_FENCING_KEY_LENGTH}); delete it to have a new one made`);
    }
  }
  // Also tightens a key file copied in with looser permissions.
  await chmod(path, 0o600);
  return path;
}
