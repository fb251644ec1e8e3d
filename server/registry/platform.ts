/**
 * Platforms (`linux/amd64`, `linux/arm64/v8`) and the choice of a manifest
 * from an image index, as containerd's platform matcher does it. Pure.
 */

export interface Platform {
  os: string;
  architecture: string;
  variant?: string | undefined;
}

/** `os/arch[/variant]` -> Platform. */
export function parsePlatform(text: string): Platform {
  const [os = '', architecture = '', variant] = text.split('/');
  return normalizePlatform({ os, architecture, variant });
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** Aliases and default variants (arm64 is v8, arm is v7), so that equal platforms compare equal. */
export function normalizePlatform(p: Platform): Platform {
  let architecture = p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase() || undefined;
  if (architecture === 'x86_64' || architecture === 'x86-64') architecture = 'amd64';
  if (architecture === 'aarch64') architecture = 'arm64';
  if (architecture === 'arm64' && variant === 'v8') variant = undefined;
  if (architecture === 'arm' && variant === undefined) variant = 'v7';
  if (architecture === 'amd64' && variant === 'v1') variant = undefined;
  return { os: p.os.toLowerCase(), architecture, variant };
}

export interface PlatformDescriptor {
  digest: string;
  mediaType?: string | undefined;
  size?: number | undefined;
  platform?: { os?: string; architecture?: string; variant?: string } | undefined;
  annotations?: Record<string, string> | undefined;
}

/**
 * The descriptor in `manifests` that serves `wanted`, or undefined. Attestation
 * manifests (platform unknown/unknown) never match. An exact variant wins over
 * an entry without variant.
 */
export function selectPlatform<D extends PlatformDescriptor>(manifests: readonly D[], wanted: Platform): D | undefined {
  const target = normalizePlatform(wanted);
  let fallback: D | undefined;
  for (const descriptor of manifests) {
    if (descriptor.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest') continue;
    const p = descriptor.platform;
    if (!p?.os || !p.architecture) continue;
    const candidate = normalizePlatform({ os: p.os, architecture: p.architecture, variant: p.variant });
    if (candidate.os !== target.os || candidate.architecture !== target.architecture) continue;
    if (candidate.variant === target.variant) return descriptor;
    if (candidate.variant === undefined || target.variant === undefined) fallback ??= descriptor;
  }
  return fallback;
}

/** The platforms an index offers, for telling the user what there is instead. */
export function offeredPlatforms(manifests: readonly PlatformDescriptor[]): string[] {
  return manifests
    .filter((d) => d.platform?.os && d.platform.architecture && d.platform.os !== 'unknown')
    .map((d) =>
      formatPlatform(normalizePlatform({ os: d.platform!.os!, architecture: d.platform!.architecture!, variant: d.platform!.variant })),
    );
}
