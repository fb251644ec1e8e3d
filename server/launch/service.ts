/**
 * Launch parameters for the spawner hook: the checked image pinned by digest,
 * the mount, the uid, and the pull credentials in the form the spawner needs
 * — or, on Docker hosts, the image already pulled so that the secret never
 * leaves the service. Refusals are 409s with a message for the researcher.
 */
import { auditEntry, imageTarget, type AuditLog } from '../audit/store.js';
import { policyHash } from '../systems/policy.js';
import { conflict, notFound, upstream } from '../errors.js';
import type { AccessRules } from '../hub/access.js';
import type { HubIdentity } from '../hub/identity.js';
import type { ImageService } from '../images/service.js';
import type { Foreground } from '../jobs/foreground.js';
import type { RegistryClient } from '../registry/client.js';
import { RegistryError } from '../registry/errors.js';
import { checkMountPath } from '../systems/mountPath.js';
import type { PullService } from '../pulls/service.js';
import { parseReference, pinnedImage, registryAuthKey } from '../registry/reference.js';
import { runAsFor } from '../systems/runAs.js';
import type { DockerEngine } from '../runner/engine.js';
import { registryAllowed, type SystemCatalog } from '../systems/schema.js';
import { notShared, type SharingService } from '../sharing/service.js';
import type { RevisionService } from '../revisions/service.js';
import type { LaunchStore } from './store.js';
import { dataVolume, dataVolumeName, VOLUME_OWNER_LABEL, VOLUME_SYSTEM_LABEL, VOLUME_USER_LABEL } from './volumes.js';

/** What the spawner hook gets at Start (web/presenters/launch.ts holds its answer's schema). */
export interface LaunchParams {
  /** The checked image, pinned by digest. */
  image: string;
  /** Whose image it is, and whose server starts: the same user unless the image is shared or published. */
  owner: string;
  user: string;
  digest: string;
  system: string;
  spawner: 'docker' | 'kubernetes';
  mount: { volume: string; target: string };
  /** The system's uid and gid: never the image's choice, never 0. */
  uid: number;
  gid: number;
  env: Record<string, string>;
  /** The secret only for the launch scope; on Docker hosts the service pulls the image itself. */
  pull: { kind: 'kubernetes'; dockerconfigjson: string | null } | { kind: 'docker'; pulled: boolean };
  check: { id: number; kind: 'static' | 'full'; finishedAt: string | null };
}

export interface LaunchServiceDeps {
  audit: AuditLog;
  access: AccessRules;
  store: LaunchStore;
  images: ImageService;
  systems: SystemCatalog;
  registry: RegistryClient;
  /** Where images are pulled for Docker systems; undefined when no engine is configured. */
  engine: DockerEngine | undefined;
  /** How long a pull at launch may take. */
  pullTimeoutMs?: number | undefined;
  /** What the engine holds; with `engine`. */
  pulls?: PullService | undefined;
  /** Whether a user may launch someone else's image (shared with their group, or published). */
  sharing?: Pick<SharingService, 'usableBy' | 'launchedByOther'> | undefined;
  /** An image's kept revisions (a launch of one), and the reading of a moved tag's new content. */
  revisions?: Pick<RevisionService, 'launchTarget' | 'tagMoved'> | undefined;
  /** Told of every launch: background work gives way while someone waits for their server. */
  foreground?: Pick<Foreground, 'noteRequest'> | undefined;
  now?: () => Date;
}

export class LaunchService {
  constructor(private readonly deps: LaunchServiceDeps) {}

  /**
   * The launch parameters of image `imageId` for `user`'s server, for the spawner hook (or the user,
   * without secrets): the user's own image, or one shared with them or published. A shared image is
   * pulled with its owner's credential (the owner agreed by sharing); the data volume and uid are the user's.
   * `revision`: one of the owner's kept revisions of the image instead of what it runs now, pinned by
   * digest and held to today's rules as any launch.
   */
  async launch(actor: HubIdentity, user: string, imageId: number, revision?: number): Promise<LaunchParams> {
    this.deps.foreground?.noteRequest();
    this.deps.access.readImagesOf(actor, user);
    const rows = await this.deps.store.load(imageId);
    const { sharing } = this.deps;
    // Where images are shared, an id that is gone (its owner deleted it) is answered as one that was unshared.
    if (!rows) throw sharing ? notShared() : notFound('Image');
    if (rows.image.owner !== user && !sharing) throw notFound('Image');
    let { image, check } = rows;
    const owner = image.owner;
    if (owner !== user) await sharing?.usableBy(actor, user, image, check);
    // A system without a row is the configured default one (or none at all): the catalog knows which.
    const system = rows.system ?? (await this.deps.systems.get(image.system));
    if (!system) throw conflict(`The system of "${image.name}" no longer exists. Choose another system for it in custom images.`);
    if (revision !== undefined) {
      // Revisions are content the owner may have moved on from: theirs to start, not a receiver's.
      if (owner !== user) throw conflict(`Revisions of "${image.name}" are started by its owner; start the image itself.`);
      if (!this.deps.revisions) throw conflict('This service keeps no revisions of images.');
      ({ image, check } = await this.deps.revisions.launchTarget(image, check, system, revision));
    }
    if (!system.enabled) throw conflict(`${system.displayName} does not offer custom images at the moment (disabled by the hub admins).`);
    if (!check)
      throw conflict(`"${image.name}" has not been checked yet. Open custom images and press "Check now", then start your server.`);
    if (check.status === 'queued' || check.status === 'running')
      throw conflict(`"${image.name}" is still being checked. Start your server when the check is done.`);
    if (check.reference !== image.reference || check.system !== system.slug) {
      throw conflict(`"${image.name}" was changed after its last check. Check it again in custom images before starting it.`);
    }
    if (check.status !== 'passed') {
      const reason = check.findings.find((f) => f.level === 'error')?.message ?? 'see the check in custom images';
      throw conflict(`The last check of "${image.name}" failed: ${reason}`);
    }
    if (check.policyHash !== policyHash(system.policy, system.platform)) {
      throw conflict(`The rules of ${system.displayName} changed after "${image.name}" was checked. Check it again in custom images.`);
    }
    if (system.policy.runCheck && check.kind !== 'full') {
      throw conflict(
        `${system.displayName} requires a test start of the image in Docker, which has not run for "${image.name}". Press "Check now" in custom images.`,
      );
    }
    const digest = check.manifestDigest ?? check.digest;
    if (!digest) throw conflict(`The check of "${image.name}" recorded no digest. Check it again.`);
    // Today's rules, not those of the day of the check: an admin may have narrowed them since.
    const reference = parseReference(image.reference);
    if (!registryAllowed(system.allowedRegistries, reference.registry, reference.repository)) {
      throw conflict(
        `${system.displayName} no longer offers images from ${reference.registry}/${reference.repository} (allowed now: ${system.allowedRegistries.join(', ')}). Choose another image for "${image.name}" in custom images.`,
      );
    }
    // Saved before the rule, or before an admin made this a push path: the site's credential reads every build there.
    const notYours = await this.deps.images.builtImageProblem(reference, owner);
    if (notYours) throw conflict(`"${image.name}" cannot be started: ${notYours}`);
    const target = image.mountPath ?? system.defaultMountPath;
    const mount = checkMountPath(target, system.mountPrefixes);
    if (!mount.ok) {
      throw conflict(
        `The data path ${target} of "${image.name}" is no longer allowed on ${system.displayName}: ${mount.message}. Edit the image in custom images and choose another path.`,
      );
    }

    // Secrets are opened only for a launch that goes ahead.
    const { pull: credentials } = await this.deps.images.pullCredentialsOf(image, rows.credential, rows.siteCredentials);
    // The tag must still point where it pointed when it was checked.
    if (!reference.digest) {
      let current: string | undefined;
      try {
        current = await this.deps.registry.session(reference, credentials).headDigest();
      } catch (err) {
        if (err instanceof RegistryError)
          throw upstream('unavailable', `The registry could not confirm "${image.name}": ${err.message}`, err);
        throw err;
      }
      if (current && current !== check.digest) {
        // Read (once) without becoming the image's, so that its owner sees what changed and decides.
        await this.deps.revisions?.tagMoved(image, current);
        throw conflict(
          `${image.reference} now points to a different image than the one checked. Open custom images to see what changed, and accept it or keep the one you had; then start your server.`,
        );
      }
    }
    const pinned = pinnedImage(reference, digest);
    const runAs = runAsFor(system.policy, check.facts ?? undefined);
    const { engine, pulls } = this.deps;
    // A volume the service prepares may be one of the user's from before names were one-to-one.
    const volume = system.spawner === 'docker' && engine ? await dataVolume(engine, user, system.slug) : dataVolumeName(user, system.slug);

    let pull: LaunchParams['pull'];
    if (system.spawner === 'kubernetes') {
      // The secret leaves the service only for the hook's token (launch scope).
      const mayReceiveSecret = this.deps.access.isLauncher(actor);
      const key = registryAuthKey(reference.registry);
      pull = {
        kind: 'kubernetes',
        dockerconfigjson:
          credentials && mayReceiveSecret
            ? JSON.stringify({
                auths: {
                  [key]: {
                    username: credentials.username,
                    password: credentials.password,
                    auth: Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64'),
                  },
                },
              })
            : null,
      };
    } else if (engine) {
      // Pinned by digest: an image already on the host (pre-pulled after its check) is exactly this one.
      const target = { owner, imageId, reference, digest };
      const auth = credentials ? { ...credentials, serveraddress: registryAuthKey(reference.registry) } : undefined;
      const pullNow = async () => {
        // The engine connects by itself: the registry's address is held to the service's rule first.
        await this.deps.registry.assertEngineMayPull(reference.registry).catch((err: unknown) => {
          throw err instanceof RegistryError ? conflict(`"${image.name}" cannot be pulled: ${err.message}`, { cause: err }) : err;
        });
        await engine.pull(pinned, auth, undefined, this.deps.pullTimeoutMs);
      };
      if (pulls) await pulls.forLaunch(target, pullNow);
      else if (!(await engine.hasImage(pinned))) await pullNow();
      // The server's user must be able to write its own data, also where the image has no such directory.
      await engine.prepareVolume({
        name: volume,
        image: pinned,
        target: mount.path,
        uid: runAs.uid,
        gid: runAs.gid,
        labels: { [VOLUME_OWNER_LABEL]: owner, [VOLUME_SYSTEM_LABEL]: system.slug, [VOLUME_USER_LABEL]: user },
        // The user's own data: filled from their own image only, never from one shared with them, nor from
        // one built from a repository (a launch link's: a stranger's files would land in the data, and stay).
        fillFromImage: owner === user && !(await this.deps.store.builtFromRepository(imageId, image.reference)),
      });
      pull = { kind: 'docker', pulled: true };
    } else {
      if (credentials)
        throw upstream(
          'unavailable',
          'This service has no Docker engine to pull a private image with; ask the hub admin to configure DOCKER_HOST.',
        );
      pull = { kind: 'docker', pulled: false };
    }

    // Built field by field under its type, which rejects any other key; the API parses it with its schema.
    const params: LaunchParams = {
      image: pinned,
      owner,
      user,
      digest,
      system: system.slug,
      spawner: system.spawner,
      mount: { volume, target: mount.path },
      uid: runAs.uid,
      gid: runAs.gid,
      env: {
        CUSTOM_IMAGES_IMAGE: pinned,
        CUSTOM_IMAGES_CHECK_ID: String(check.id),
        ...(revision !== undefined ? { CUSTOM_IMAGES_REVISION: String(revision) } : {}),
      },
      pull,
      check: { id: check.id, kind: check.kind, finishedAt: check.finishedAt?.toISOString() ?? null },
    };
    await this.deps.audit.append(
      auditEntry(actor, 'image.launch', imageTarget(imageId), {
        owner,
        user,
        image: pinned,
        digest,
        system: system.slug,
        pull: pull.kind,
        ...(revision !== undefined ? { revision } : {}),
      }),
      (this.deps.now ?? (() => new Date()))(),
    );
    if (owner !== user) await sharing?.launchedByOther(image);
    return params;
  }
}
