/**
 * What an image's final filesystem holds, as the static check records it
 * while reading the layers: its Pythons and the packages of the one that runs
 * `jupyterhub-singleuser`, conda and OS packages, the Jupyter versions, the
 * kernelspecs and CUDA. One inventory per platform manifest digest, shared by
 * every image with that digest. Versioned: a stored inventory of another
 * version is read again by the next check rather than misread.
 */
import { z } from 'zod';

/** Bump with any change of shape below; stored inventories of other versions are not served. */
export const INVENTORY_VERSION = 1;

const PythonSchema = z.object({
  /** Absolute path in the image, as found (the shebang's or `env`'s interpreter, or a `bin/pythonX.Y`). */
  executable: z.string(),
  /** `3.11` or `3.11.4`, as precise as the image tells without running it. */
  version: z.string(),
});

export const PythonPackageSchema = z.object({
  /** As `pip list` prints it: the metadata's `Name`, not normalised. */
  name: z.string(),
  version: z.string(),
  /** The `INSTALLER` file's first line (`pip`, `conda`, `debian`, `uv`), null when there is none (egg-info). */
  installer: z.string().nullable(),
  /** The sys.path directory that holds its metadata. */
  location: z.string(),
});

export const CondaPackageSchema = z.object({
  name: z.string(),
  version: z.string(),
  build: z.string(),
  /** The channel's name or URL as the record has it (`conda-forge`, `pkgs/main`), `''` when unknown. */
  channel: z.string(),
});

export const OsPackageSchema = z.object({
  name: z.string(),
  version: z.string(),
  arch: z.string().nullable(),
});

export const OsPackagesSchema = z.object({
  manager: z.enum(['dpkg', 'apk', 'rpm']),
  packages: z.array(OsPackageSchema),
});

export const KernelspecSchema = z.object({
  /** The kernelspec's directory name (what `jupyter kernelspec list` shows). */
  name: z.string(),
  displayName: z.string(),
  language: z.string(),
});

export const JupyterVersionsSchema = z.object({
  jupyterhub: z.string().nullable(),
  jupyter_server: z.string().nullable(),
  jupyterlab: z.string().nullable(),
  notebook: z.string().nullable(),
  ipykernel: z.string().nullable(),
});

/** What the check's version rules read (server/inspect/rules.ts's RuleInputs). */
export const RuleInputsSchema = z.object({
  /** jupyterhub-singleuser is on PATH; its interpreter exists. */
  singleuser: z.boolean(),
  interpreter: z.boolean(),
  /** The interpreter's `X.Y`, as the check reads it. */
  pythonVersion: z.string().nullable(),
  /** JupyterHub's version as the check compares it with the hub's. */
  jupyterhubVersion: z.string().nullable(),
  pip: z.boolean(),
});

export const InventorySchema = z.object({
  version: z.literal(INVENTORY_VERSION),
  /** The Python that runs jupyterhub-singleuser (its shebang or `env`); null when there is none. */
  python: PythonSchema.nullable(),
  /** Every Python found on the image, that one included. */
  pythons: z.array(PythonSchema),
  /** The distributions on that Python's sys.path, as `python -m pip list` shows them (the first of a name wins). */
  pythonPackages: z.array(PythonPackageSchema),
  condaPackages: z.array(CondaPackageSchema),
  osPackages: OsPackagesSchema.nullable(),
  jupyter: JupyterVersionsSchema,
  kernelspecs: z.array(KernelspecSchema),
  /** Versions from the library file names (`libcudart.so.12.2.140`, `libcudnn.so.8.9.7`). */
  cuda: z.object({ cuda: z.string().nullable(), cudnn: z.string().nullable() }),
  /**
   * What the check's version rules read of this image (server/inspect/rules.ts), so that a
   * forecast judges it as a check with another hub version or policy would, without a download.
   */
  ruleInputs: RuleInputsSchema,
  /**
   * What could not be read in full, in words ("/var/lib/dpkg/status is larger than 16 MB"):
   * the lists above are then partial, and a diff or an export says so.
   */
  incomplete: z.array(z.string()),
});

export type Inventory = z.infer<typeof InventorySchema>;
export type PythonPackage = z.infer<typeof PythonPackageSchema>;
export type CondaPackage = z.infer<typeof CondaPackageSchema>;
export type OsPackage = z.infer<typeof OsPackageSchema>;
export type OsPackages = z.infer<typeof OsPackagesSchema>;
export type Kernelspec = z.infer<typeof KernelspecSchema>;
export type JupyterVersions = z.infer<typeof JupyterVersionsSchema>;

/** An inventory of an image with nothing found (no Python, no package database). */
export function emptyInventory(): Inventory {
  return {
    version: INVENTORY_VERSION,
    python: null,
    pythons: [],
    pythonPackages: [],
    condaPackages: [],
    osPackages: null,
    jupyter: { jupyterhub: null, jupyter_server: null, jupyterlab: null, notebook: null, ipykernel: null },
    kernelspecs: [],
    cuda: { cuda: null, cudnn: null },
    ruleInputs: { singleuser: false, interpreter: false, pythonVersion: null, jupyterhubVersion: null, pip: false },
    incomplete: [],
  };
}
