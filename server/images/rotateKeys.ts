/**
 * Re-seals every stored credential with the first (current) key, so that an
 * old key can then be removed from CUSTOM_IMAGES_CRYPT_KEY.
 */
import { AppError } from '../errors.js';
import { resealWithCurrentKey, type Keyring, type RotationResult } from '../secrets/keyring.js';
import { credentialAssociatedData } from './service.js';
import type { ImageStore } from './store.js';

/** Opens each credential with any configured key and seals it again with the first. */
export async function rotateCredentialKeys(
  store: ImageStore,
  keyring: Keyring,
  now: () => Date = () => new Date(),
): Promise<RotationResult> {
  if (!keyring.canSeal) {
    throw new AppError(
      'secrets_unavailable',
      'CUSTOM_IMAGES_CRYPT_KEY is not set: give the new key first, then the old ones, separated by ";"',
    );
  }
  return resealWithCurrentKey(
    keyring,
    await store.allCredentials(),
    (credential) => credentialAssociatedData(credential.id, credential.owner),
    (id, sealed) => store.resealCredential(id, sealed, now()),
  );
}
