import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureFencingKey, FENCING_KEY_FILE_NAME } from '../../../local/fencing-key';

describe('the local fencing key', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'porchlight-fencing-key-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('is made on first use: 64 hex characters that only the owner can read or write', async () => {
    const path = await ensureFencingKey(dir);
    expect(path).toBe(join(dir, FENCING_KEY_FILE_NAME));
    expect((await readFile(path, 'utf8')).trim()).toMatch(/^[0-9a-f]{64}$/);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('keeps an existing key, so tokens of running tasks stay valid, and tightens its permissions', async () => {
    const path = await ensureFencingKey(dir);
    const first = await readFile(path, 'utf8');
    await chmod(path, 0o644);
    expect(await ensureFencingKey(dir)).toBe(path);
    expect(await readFile(path, 'utf8')).toBe(first);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('refuses a key file too short to be a key, saying what to do', async () => {
    await writeFile(join(dir, FENCING_KEY_FILE_NAME), 'short\n');
    await expect(ensureFencingKey(dir)).rejects.toThrow(/holds 5 characters, too few for a fencing key .* delete it to have a new one made/);
  });
});
