/** What the distribution and image specifications call things: media types, descriptors, configs. */

export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

/** The manifests we read, for an Accept header. */
export const ACCEPT_MANIFESTS = [MEDIA.ociIndex, MEDIA.ociManifest, MEDIA.dockerList, MEDIA.dockerManifest].join(', ');

/** A content descriptor (OCI image spec). */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[] | undefined;
  platform?: { os?: string; architecture?: string; variant?: string } | undefined;
  annotations?: Record<string, string> | undefined;
}

/** The parts of the image config we use. */
export interface ImageConfig {
  os?: string;
  architecture?: string;
  variant?: string;
  config?: {
    Env?: string[] | null;
    User?: string;
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    /** Build triggers: instructions the engine runs when a Dockerfile builds FROM this image. */
    OnBuild?: string[] | null;
  };
}

/** An image resolved to one platform. */
export interface ResolvedImage {
  /** The digest the reference points at (the index's, for a multi-platform image). */
  digest: string;
  /** The platform manifest's digest: what a spawner pulls by. */
  manifestDigest: string;
  platform: string;
  config: ImageConfig;
  configDigest: string;
  layers: Descriptor[];
  /** The sum of the layers' sizes, compressed. */
  size: number;
}

export interface RegistryCredentials {
  username: string;
  password: string;
}
