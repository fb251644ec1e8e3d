/** Request augmentations shared by the routers. */
import type { HubIdentity } from '../hub/identity.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    // passport's req.user is the hub identity that logged in.
    // eslint-disable-next-line @typescript-eslint/no-empty-object-type
    interface User extends HubIdentity {}
    interface Request {
      /** Numbers the request in the access log and in error messages (set by requestLog). */
      id?: number;
      /** The owner of the hub token on an API request. */
      identity?: HubIdentity;
    }
  }
}

export {};
