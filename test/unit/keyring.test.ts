import { describe, expect, it } from 'vitest';
import { AppError } from '../../server/errors.js';
import { createKeyring } from '../../server/secrets/keyring.js';

const keyA = new Uint8Array(32).fill(1);
const keyB = new Uint8Array(32).fill(2);

describe('keyring', () => {
  it('seals with a fresh nonce each time and opens with the same associated data', async () => {
    const ring = await createKeyring([keyA]);
    const one = ring.seal('hunter2', 'row-1/alice');
    const two = ring.seal('hunter2', 'row-1/alice');
    expect(Buffer.from(one.nonce).equals(Buffer.from(two.nonce))).toBe(false);
    expect(Buffer.from(one.ciphertext).includes(Buffer.from('hunter2'))).toBe(false);
    expect(ring.open(one, 'row-1/alice')).toBe('hunter2');
  });

  it('does not open a ciphertext moved to another row or owner', async () => {
    const ring = await createKeyring([keyA]);
    const sealed = ring.seal('hunter2', 'row-1/alice');
    expect(() => ring.open(sealed, 'row-1/mallory')).toThrow(AppError);
    expect(() => ring.open(sealed, 'row-2/alice')).toThrow(AppError);
  });

  it('seals with the first key and opens with any', async () => {
    const old = await createKeyring([keyA]);
    const sealed = old.seal('s', 'ad');
    const rotated = await createKeyring([keyB, keyA]);
    expect(rotated.open(sealed, 'ad')).toBe('s');
    expect(rotated.seal('s', 'ad').keyId).toBe(rotated.currentKeyId);
    expect(rotated.currentKeyId).not.toBe(old.currentKeyId);
    const onlyNew = await createKeyring([keyB]);
    expect(() => onlyNew.open(sealed, 'ad')).toThrow(/could not be opened/);
  });

  it('refuses to seal without a key, saying why', async () => {
    const ring = await createKeyring([]);
    expect(ring.canSeal).toBe(false);
    expect(() => ring.seal('s', 'ad')).toThrow(/CUSTOM_IMAGES_CRYPT_KEY/);
  });
});
