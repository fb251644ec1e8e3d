/**
 * Re-seals every stored credential with the first (current) key, so that an
 * old key can then be removed from CUSTOM_IMAGES_CRYPT_KEY.
 */
import { AppError } from '../errors.js';
import type { Keyring } from '../secrets/keyring.js';
import { credentialAssociatedData } from './service.js';
import type { ImageStore } from './store.js';

export interface RotationResult {
  resealed: number;
  alreadyCurrent: number;
}

/** Opens each credential with any configured key and seals it again with the first. */
export async function rotateCredentialKeys(store: ImageStore, keyring: Keyring, now: () => Date = () => new Date()): Promise<RotationResult> {
  if (!keyring.canSeal) {
    throw new AppError(400, 'secrets_unavailable', 'CUSTOM_IMAGES_CRYPT_KEY is not set: give the new key first, then the old ones, separated by ";"');
  }
  const result: RotationResult = { resealed: 0, alreadyCurrent: 0 };
  for (const credential of await store.allCredentials()) {
    if (credential.keyId === keyring.currentKeyId) {
      result.alreadyCurrent += 1;
      continue;
    }
    const associatedData = credentialAssociatedData(credential.id, credential.owner);
    const plaintext = keyring.open(credential, associatedData);
    await store.resealCredential(credential.id, keyring.seal(plaintext, associatedData), now());
    result.resealed += 1;
  }
  return result;
}
