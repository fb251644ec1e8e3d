/**
 * The hub token a browser session logged in with, kept sealed in the
 * server-side session (as JupyterHub's HubOAuth keeps it in an encrypted
 * cookie): so that the session can ask the hub again, every few minutes, who
 * the user is now. AES-256-GCM with a key derived from the cookie secret, so
 * that the sessions table alone opens nothing.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

export interface SessionTokenSealer {
  seal(token: string): string;
  /** The token, or undefined when it does not open (another secret, a damaged row). */
  open(sealed: string): string | undefined;
}

export function createSessionTokenSealer(cookieSecret: string): SessionTokenSealer {
  const key = Buffer.from(hkdfSync('sha256', cookieSecret, 'custom-images', 'session hub token v1', 32));
  return {
    seal(token) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const sealed = Buffer.concat([cipher.update(token, 'utf8'), cipher.final()]);
      return [iv, cipher.getAuthTag(), sealed].map((b) => b.toString('base64url')).join('.');
    },
    open(sealed) {
      try {
        const [iv = '', tag = '', body = ''] = sealed.split('.');
        const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
        decipher.setAuthTag(Buffer.from(tag, 'base64url'));
        return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
      } catch {
        return undefined;
      }
    },
  };
}
