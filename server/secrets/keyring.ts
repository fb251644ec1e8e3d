/**
 * Sealed secrets: libsodium's XChaCha20-Poly1305 AEAD, a fresh random nonce
 * per seal, associated data that binds a ciphertext to its row and owner.
 *
 * Keys come as in JUPYTERHUB_CRYPT_KEY: several 32-byte keys, the first seals,
 * all open. Each sealed value records the id of the key that sealed it, so a
 * rotation knows what is left to re-seal.
 */
import sodium from 'libsodium-wrappers';
import { AppError } from '../errors.js';

/** A sealed value as it is stored. */
export interface Sealed {
  ciphertext: Uint8Array;
  nonce: Uint8Array;
  /** The id of the key that sealed it (a hash of the key, never the key). */
  keyId: string;
}

/** Seals and opens secrets; see the module comment. */
export interface Keyring {
  /** Whether a key is configured; without one nothing can be sealed. */
  readonly canSeal: boolean;
  /** The id of the key that seals new values. */
  readonly currentKeyId: string | undefined;
  /** @throws AppError secrets_unavailable without a key. */
  seal(plaintext: string, associatedData: string): Sealed;
  /** @throws AppError secrets_unavailable if no key opens it or the associated data differs. */
  open(sealed: Sealed, associatedData: string): string;
  /**
   * A keyed fingerprint of a secret, for telling whether two uses had the same
   * one without storing it: the same for all replicas with the same first key,
   * another after a key rotation (without a key, for this process only).
   */
  fingerprint(secret: string): string;
}

/** Message shown when no key is configured. */
const NO_KEY_MESSAGE =
  'This service has no encryption key (CUSTOM_IMAGES_CRYPT_KEY), so it cannot store passwords or tokens. Ask the hub admin to set one; images that need no password can still be saved.';

/** Creates a keyring over `keys` (first seals, all open). */
export async function createKeyring(keys: readonly Uint8Array[]): Promise<Keyring> {
  await sodium.ready;
  const entries = keys.map((key) => ({ key, id: sodium.to_hex(sodium.crypto_generichash(8, key, null)) }));
  const current = entries[0];
  const fingerprintKey = current
    ? sodium.crypto_generichash(32, current.key, sodium.from_string('custom-images fingerprint v1'))
    : sodium.randombytes_buf(32);

  return {
    canSeal: current !== undefined,
    currentKeyId: current?.id,

    seal(plaintext, associatedData) {
      if (!current) throw new AppError('secrets_unavailable', NO_KEY_MESSAGE, { field: 'password', expose: true });
      const nonce = sodium.randombytes_buf(sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
      const ciphertext = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, associatedData, null, nonce, current.key);
      return { ciphertext, nonce, keyId: current.id };
    },

    fingerprint(secret) {
      return sodium.to_hex(sodium.crypto_generichash(16, secret, fingerprintKey));
    },

    open(sealed, associatedData) {
      // The recorded key first; every key after, in case ids were lost in a copy.
      const ordered = [...entries].sort((a, b) => Number(b.id === sealed.keyId) - Number(a.id === sealed.keyId));
      for (const { key } of ordered) {
        try {
          const plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, sealed.ciphertext, associatedData, sealed.nonce, key);
          return sodium.to_string(plain);
        } catch {
          // wrong key or wrong associated data: try the next key
        }
      }
      throw new AppError(
        'secrets_unavailable',
        entries.length === 0
          ? NO_KEY_MESSAGE
          : 'A stored password could not be opened with the configured keys. Enter the password again, or ask the hub admin whether CUSTOM_IMAGES_CRYPT_KEY lost a key.',
        { expose: true },
      );
    },
  };
}

/** How many stored secrets a rotation re-sealed, and how many already used the current key. */
export interface RotationResult {
  resealed: number;
  alreadyCurrent: number;
}

/**
 * Re-seals every row not sealed with the current key: opened with any
 * configured key, sealed again with the first. Each table gives its rows, its
 * associated data and how to save a row.
 */
export async function resealWithCurrentKey<R extends Sealed & { id: string }>(
  keyring: Keyring,
  rows: readonly R[],
  associatedData: (row: R) => string,
  save: (id: string, sealed: Sealed) => Promise<void>,
): Promise<RotationResult> {
  const result: RotationResult = { resealed: 0, alreadyCurrent: 0 };
  for (const row of rows) {
    if (row.keyId === keyring.currentKeyId) {
      result.alreadyCurrent += 1;
      continue;
    }
    const ad = associatedData(row);
    await save(row.id, keyring.seal(keyring.open(row, ad), ad));
    result.resealed += 1;
  }
  return result;
}
