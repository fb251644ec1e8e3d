/**
 * The one schema for a user's image configuration, shared by the form and the
 * JSON API: raw strings in, a normalised {@link ImageInput} out, or issues
 * that each name their field.
 */
import { z } from 'zod';
import { checkbox, firstMessages } from '../forms.js';
import { DOCKER_HUB, ReferenceError, parseReference, parseRegistryHost, type ImageReference } from '../registry/reference.js';
import { registryAllowed, type System } from '../systems/schema.js';
import { MOUNT_PATH_MAX_LENGTH, checkMountPath } from '../systems/mountPath.js';

/**
 * Longer than any valid reference (a 255-character name, a 128-character tag and
 * a digest); the parser says which part is too long below this.
 */
const IMAGE_REFERENCE_MAX_LENGTH = 600;

/** An image's description: a line or two of plain text, shown escaped on its tile and in the spawn form. */
export const DESCRIPTION_MAX_LENGTH = 300;

/** The description field, shared by the image form and the build form (a built image is an image). */
export const DescriptionSchema = z
  .string({ message: 'The description is text' })
  .trim()
  .max(DESCRIPTION_MAX_LENGTH, `The description has at most ${DESCRIPTION_MAX_LENGTH} characters`)
  .default('');

/** What the form posts and the API takes, before the rules that need a system. */
export const ImageInputSchema = z.object({
  name: z.string().trim().max(100, 'The name has at most 100 characters').default(''),
  description: DescriptionSchema,
  system: z.string({ message: 'Choose a system' }).trim().min(1, 'Choose a system'),
  image: z
    .string({ message: 'Enter an image' })
    .max(IMAGE_REFERENCE_MAX_LENGTH, `The image reference has at most ${IMAGE_REFERENCE_MAX_LENGTH} characters`),
  registry: z.string().trim().max(300, 'The registry has at most 300 characters').default(''),
  username: z.string().trim().max(255, 'The username has at most 255 characters').default(''),
  password: z.string().max(4096, 'The password or token has at most 4096 characters').default(''),
  mountPath: z.string().max(MOUNT_PATH_MAX_LENGTH, `The mount path has at most ${MOUNT_PATH_MAX_LENGTH} characters`).default(''),
  removeCredentials: checkbox,
});

/** The form's fields. */
export type ImageField = keyof z.input<typeof ImageInputSchema>;

/** What to do with the stored credential. */
export type CredentialChange =
  { action: 'none' } | { action: 'remove' } | { action: 'keep'; username: string } | { action: 'set'; username: string; password: string };

/** A validated, normalised image configuration. */
export interface ImageInput {
  name: string;
  /** Plain text, '' for none. */
  description: string;
  system: System;
  referenceInput: string;
  reference: ImageReference;
  /** The registry credentials are for (the image's registry). */
  registry: string;
  credential: CredentialChange;
  /** Null: the system's default. */
  mountPath: string | null;
  /** Accepted, but worth telling the user (an unpinned tag). */
  warnings: string[];
}

/** On edit: what is stored now, so that a blank password can keep it. */
export interface ExistingCredential {
  registry: string;
  username: string;
}

export interface ImageSchemaContext {
  /** The systems the user may choose. */
  systems: readonly System[];
  existingCredential?: ExistingCredential | undefined;
}

/** The warning for `latest` or no tag. */
export function unpinnedWarning(reference: ImageReference): string {
  return `${reference.normalized} uses the tag "latest", which can point to a different image tomorrow. Pin a tag (e.g. :2024-05-01) or a digest (@sha256:…) so that your server starts the image that was checked.`;
}

/**
 * The full schema for one request: {@link ImageInputSchema} plus the rules
 * that need the chosen system and the stored credential.
 */
export function imageInputSchema(context: ImageSchemaContext) {
  return ImageInputSchema.transform((raw, ctx): ImageInput => {
    const issue = (field: ImageField, message: string) => ctx.addIssue({ code: 'custom', path: [field], message });

    const system = context.systems.find((s) => s.slug === raw.system);
    if (!system)
      issue('system', `Choose one of the offered systems: ${context.systems.map((s) => s.displayName).join(', ') || 'none is enabled'}`);

    let reference: ImageReference | undefined;
    try {
      reference = parseReference(raw.image);
    } catch (err) {
      if (!(err instanceof ReferenceError)) throw err;
      issue('image', err.message);
    }

    let registry: string | undefined;
    if (raw.registry !== '') {
      try {
        registry = parseRegistryHost(raw.registry);
      } catch (err) {
        if (!(err instanceof ReferenceError)) throw err;
        issue('registry', err.message);
      }
    }
    if (reference && registry && reference.registry !== registry) {
      issue(
        'image',
        `The image is on ${reference.registry} but the private registry is ${registry}: with a private registry, write the image's full path on it, e.g. ${registry}/${reference.repository.replace(/^library\//, '')}:${reference.tag ?? 'tag'}`,
      );
    }
    if (reference && system && !registryAllowed(system.allowedRegistries, reference.registry, reference.repository)) {
      issue(
        'image',
        `${system.displayName} does not offer images from ${reference.registry}/${reference.repository}; allowed: ${system.allowedRegistries.join(', ')}`,
      );
    }

    const credential = credentialChange(raw, reference, registry, context.existingCredential, issue);

    let mountPath: string | null = null;
    if (raw.mountPath.trim() !== '' && system) {
      const checked = checkMountPath(raw.mountPath, system.mountPrefixes);
      if (checked.ok) mountPath = checked.path;
      else issue('mountPath', checked.message);
    }

    if (!system || !reference) return z.NEVER;
    const lastPart = reference.repository.split('/').pop() ?? reference.repository;
    return {
      name: raw.name || `${lastPart}${reference.tag ? `:${reference.tag}` : ''}`,
      description: raw.description,
      system,
      referenceInput: raw.image,
      reference,
      registry: reference.registry,
      credential,
      mountPath,
      warnings: reference.unpinned ? [unpinnedWarning(reference)] : [],
    };
  });
}

function credentialChange(
  raw: z.output<typeof ImageInputSchema>,
  reference: ImageReference | undefined,
  registry: string | undefined,
  existing: ExistingCredential | undefined,
  issue: (field: ImageField, message: string) => void,
): CredentialChange {
  if (raw.removeCredentials) return { action: 'remove' };
  const wantsCredential = raw.username !== '' || raw.password !== '' || existing !== undefined;
  if (!wantsCredential) return { action: 'none' };

  // Credentials are for the image's registry; only Docker Hub needs no registry field.
  if (
    reference &&
    reference.registry !== DOCKER_HUB &&
    registry === undefined &&
    raw.registry === '' &&
    (raw.username !== '' || raw.password !== '')
  ) {
    issue('registry', `Credentials need the private registry they are for: enter ${reference.registry} as the private registry`);
  }
  if (raw.password !== '') {
    if (raw.username === '') issue('username', 'Enter the username that goes with this password or token');
    return { action: 'set', username: raw.username, password: raw.password };
  }
  if (existing) {
    if (reference && existing.registry !== reference.registry) {
      issue(
        'password',
        `The stored password is for ${existing.registry}; enter the password for ${reference.registry}, or tick "remove credentials"`,
      );
    }
    return { action: 'keep', username: raw.username || existing.username };
  }
  issue('password', `Enter the password or access token for ${raw.username}`);
  return { action: 'none' };
}

/** The first message for each field, for showing next to the inputs. */
export function fieldErrors(error: z.ZodError): Partial<Record<ImageField, string>> {
  return firstMessages(error, 'image');
}
