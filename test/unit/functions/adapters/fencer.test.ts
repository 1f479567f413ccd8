import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { ConfigError } from '../../../../core/errors';
import { AdapterError } from '../../../../functions/adapters/errors';
import { deriveFencingToken, fileKey, HmacFencer, secretsManagerKey } from '../../../../functions/adapters/fencer';

const KEY = 'k'.repeat(16) + '0123456789abcdef0123456789';

describe('HmacFencer', () => {
  it('derives the RFC 2104 HMAC-SHA-256 of task/step/epoch, base64url', async () => {
    // Known answer computed independently (openssl dgst -sha256 -hmac KEY over "t1/s1/1").
    const fencer = new HmacFencer(() => Promise.resolve('key-for-a-known-answer-0123456789abcdef'));
    expect(await fencer.token('t1', 's1', 1)).toBe('c1-JSMJnWOyZIavH7e2j1gb1qHQKmGzANElD3cBtjCc');
  });

  it('gives every (task, step, epoch) its own token, the same every time', async () => {
    const fencer = new HmacFencer(() => Promise.resolve(KEY));
    const tokens = await Promise.all([fencer.token('t1', 's1', 1), fencer.token('t1', 's1', 2), fencer.token('t1', 's2', 1), fencer.token('t2', 's1', 1)]);
    expect(new Set(tokens).size).toBe(4);
    expect(await fencer.token('t1', 's1', 1)).toBe(tokens[0]);
    expect(tokens.every((t) => /^[A-Za-z0-9_-]{43}$/.test(t))).toBe(true);
    // Ids cannot be shifted across the separator to forge another triple's token.
    expect(deriveFencingToken(KEY, 'a', 'b-c', 1)).not.toBe(deriveFencingToken(KEY, 'a-b', 'c', 1));
  });

  it('accepts exactly the token of the (task, step, epoch) it is asked about', async () => {
    const fencer = new HmacFencer(() => Promise.resolve(KEY));
    const token = deriveFencingToken(KEY, 't1', 's1', 2);
    expect(await fencer.matches('t1', 's1', 2, token)).toBe(true);
    expect(await fencer.matches('t1', 's1', 1, token)).toBe(false);
    expect(await fencer.matches('t1', 's2', 2, token)).toBe(false);
    expect(await fencer.matches('t1', 's1', 2, token.slice(0, -1))).toBe(false);
    expect(await fencer.matches('t1', 's1', 2, `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`)).toBe(false);
  });

  it('differs under another key', async () => {
    const other = new HmacFencer(() => Promise.resolve(`${KEY}x`));
    expect(await other.token('t1', 's1', 1)).not.toBe(deriveFencingToken(KEY, 't1', 's1', 1));
  });

  it('loads the key once, and again after a failed load', async () => {
    let calls = 0;
    const fencer = new HmacFencer(async () => {
      calls += 1;
      if (calls === 1) throw new Error('not yet');
      return KEY;
    });
    await expect(fencer.token('t1', 's1', 1)).rejects.toThrow('not yet');
    await fencer.token('t1', 's1', 1);
    await fencer.token('t1', 's1', 2);
    expect(calls).toBe(2);
  });

  it('refuses a key too short to be one, naming the length', async () => {
    await expect(new HmacFencer(() => Promise.resolve('short ')).token('t1', 's1', 1)).rejects.toThrow(/fencing key has 5 characters; at least 32/);
  });
});

describe('fencing key sources', () => {
  it('reads a key file, and says which file it could not read', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'porchlight-fencer-'));
    try {
      await writeFile(join(dir, 'fencing.key'), `${KEY}\n`);
      expect(await new HmacFencer(fileKey(join(dir, 'fencing.key'))).token('t1', 's1', 1)).toBe(deriveFencingToken(KEY, 't1', 's1', 1));
      const missing = join(dir, 'nope.key');
      await expect(fileKey(missing)()).rejects.toThrow(ConfigError);
      await expect(fileKey(missing)()).rejects.toThrow(`cannot read the fencing key file ${missing}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads the SecretString of a Secrets Manager secret, and refuses a binary one', async () => {
    const sm = mockClient(SecretsManagerClient);
    sm.on(GetSecretValueCommand, { SecretId: 'arn:fencing' }).resolves({ SecretString: KEY });
    sm.on(GetSecretValueCommand, { SecretId: 'arn:binary' }).resolves({ SecretBinary: new Uint8Array([1, 2]) });
    const client = new SecretsManagerClient({ region: 'eu-central-1' });
    expect(await secretsManagerKey(client, 'arn:fencing')()).toBe(KEY);
    await expect(secretsManagerKey(client, 'arn:binary')()).rejects.toThrow(/no string value/);
    sm.on(GetSecretValueCommand, { SecretId: 'arn:denied' }).rejects(Object.assign(new Error('not allowed'), { name: 'AccessDeniedException' }));
    const denied = secretsManagerKey(client, 'arn:denied')();
    await expect(denied).rejects.toBeInstanceOf(AdapterError);
    await expect(secretsManagerKey(client, 'arn:denied')()).rejects.toThrow(/read fencing key arn:denied: AccessDeniedException/);
    sm.restore();
  });
});
