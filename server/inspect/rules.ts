/**
 * The version rules of the check, apart from the filesystem they are read
 * from: the Python version against the system's range, JupyterHub's major
 * version against the hub's, pip. The check applies them to what it reads;
 * a forecast applies them to a stored inventory's inputs with another hub
 * version or policy, and so judges an image exactly as a check would. Pure.
 */
import type { ImagePolicy } from '../systems/schema.js';

/** What the version rules read of an image (an inventory keeps it: server/inventory/schema.ts). */
export interface RuleInputs {
  singleuser: boolean;
  interpreter: boolean;
  /** `X.Y` of the singleuser's interpreter. */
  pythonVersion: string | null;
  jupyterhubVersion: string | null;
  pip: boolean;
}

/** A finding of these rules (the shape of analyze.ts's findings). */
export interface RuleFinding {
  code: string;
  level: 'error' | 'warning' | 'info';
  message: string;
}

/** The codes these rules give: a forecast replaces exactly these findings of a stored check. */
export const VERSION_RULE_CODES: ReadonlySet<string> = new Set([
  'python.version',
  'jupyterhub.version',
  'jupyterhub.unknown',
  'pip.missing',
]);

export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The findings of the version rules, in the check's order: Python, JupyterHub, pip. */
export function versionFindings(
  inputs: RuleInputs,
  options: { policy: Pick<ImagePolicy, 'python' | 'requirePip'>; hubVersion?: string | undefined },
): RuleFinding[] {
  const findings: RuleFinding[] = [];
  const add = (code: string, level: RuleFinding['level'], message: string) => findings.push({ code, level, message });

  const pythonVersion = inputs.pythonVersion;
  if (pythonVersion) {
    const { min, max } = options.policy.python ?? {};
    const tooOld = min !== undefined && compareVersions(pythonVersion, min) < 0;
    const tooNew = max !== undefined && compareVersions(pythonVersion, max) > 0;
    if (tooOld || tooNew) {
      add(
        'python.version',
        'error',
        `The image has Python ${pythonVersion}; this system needs Python ${[min && `${min} or newer`, max && `${max} or older`].filter(Boolean).join(' and ')}.`,
      );
    } else {
      add('python.version', 'info', `Python ${pythonVersion}.`);
    }
  } else if (inputs.interpreter && options.policy.python && (options.policy.python.min || options.policy.python.max)) {
    add('python.version', 'warning', "The Python version could not be read from the image, so the system's Python range was not checked.");
  }

  if (inputs.singleuser && inputs.jupyterhubVersion && options.hubVersion) {
    const imageMajor = inputs.jupyterhubVersion.split('.')[0];
    const hubMajor = options.hubVersion.split('.')[0];
    if (imageMajor !== hubMajor) {
      add(
        'jupyterhub.version',
        'warning',
        `The image has JupyterHub ${inputs.jupyterhubVersion}, the hub runs ${options.hubVersion}. A different major version may fail to start; install jupyterhub==${hubMajor}.* in the image.`,
      );
    }
  } else if (inputs.singleuser && !inputs.jupyterhubVersion) {
    add(
      'jupyterhub.unknown',
      'warning',
      "JupyterHub's package metadata was not found, so its version could not be compared with the hub's.",
    );
  }

  if (!inputs.pip) {
    add(
      'pip.missing',
      options.policy.requirePip ? 'error' : 'warning',
      'The image has no pip, so packages cannot be installed from a notebook with %pip install.',
    );
  }
  return findings;
}
