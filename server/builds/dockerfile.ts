import { parseReference, ReferenceError } from '../registry/reference.js';
import { registryAllowed } from '../systems/schema.js';
import { formatKiB } from '../format.js';

/**
 * What a Dockerfile pulls in: the images its `FROM` lines and `COPY --from`
 * name, with build arguments declared before the first FROM substituted as
 * Docker does. Pure; the engine parses the file again when it builds.
 */

/** One instruction: its keyword (upper case), its arguments, and the line it starts on. */
interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

/** The instructions of a Dockerfile, with continuation lines joined and comments dropped. */
export function instructions(text: string): Instruction[] {
  const lines = text.split(/\r?\n/);
  // A parser directive may change the escape character (`# escape=``).
  const directive = /^#\s*escape\s*=\s*([\\`])\s*$/i.exec(lines.find((l) => l.trim() !== '') ?? '');
  const escape = directive?.[1] ?? '\\';
  const result: Instruction[] = [];
  const finish = (instruction: { text: string; line: number }) => {
    const m = /^(\S+)\s*(.*)$/.exec(instruction.text);
    if (m) result.push({ keyword: (m[1] ?? '').toUpperCase(), args: (m[2] ?? '').trim(), line: instruction.line });
  };
  let current: { text: string; line: number } | undefined;
  lines.forEach((raw, index) => {
    const trimmed = raw.trim();
    // Blank and comment lines end nothing: a continued instruction goes on after them, as Docker reads it.
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const continued = trimmed.endsWith(escape);
    const part = continued ? trimmed.slice(0, -1) : trimmed;
    current = current ? { text: `${current.text} ${part}`, line: current.line } : { text: part, line: index + 1 };
    if (continued) return;
    finish(current);
    current = undefined;
  });
  if (current) finish(current);
  return result;
}

/** An image a Dockerfile pulls, as written after substitution, with the line that names it. */
export interface PulledImage {
  image: string;
  line: number;
}

export interface DockerfileImages {
  /** Images pulled from registries (not `scratch`, not an earlier stage). */
  images: PulledImage[];
  /** Problems a researcher must fix, each naming its line. */
  problems: string[];
}

/** Substitutes `$NAME` and `${NAME}` (with `:-` and `:+` forms) from `args`; undefined when a name is unknown. */
function substitute(value: string, args: Map<string, string>): string | undefined {
  let unknown = false;
  const out = value.replace(
    /\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g,
    (_, braced, op, word, bare) => {
      const name = (braced ?? bare) as string;
      const set = args.get(name);
      if (op === '-') return set ? set : (word as string);
      if (op === '+') return set ? (word as string) : '';
      if (set === undefined) unknown = true;
      return set ?? '';
    },
  );
  return unknown ? undefined : out;
}

/** The images `text` builds from, and what is wrong with its FROM lines. */
export function dockerfileImages(text: string): DockerfileImages {
  const list = instructions(text);
  const problems: string[] = [];
  const images: PulledImage[] = [];
  const args = new Map<string, string>();
  const stages: string[] = [];
  let seenFrom = false;
  for (const { keyword, args: rest, line } of list) {
    if (keyword === 'ARG' && !seenFrom) {
      for (const declaration of rest.split(/\s+/).filter(Boolean)) {
        const [name, ...value] = declaration.split('=');
        if (name) args.set(name, value.join('=').replace(/^"(.*)"$/, '$1'));
      }
    } else if (keyword === 'FROM') {
      seenFrom = true;
      const words = rest.split(/\s+/).filter((w) => !w.startsWith('--'));
      const written = words[0] ?? '';
      const image = substitute(written, args);
      if (words.length >= 3 && words[1]?.toLowerCase() === 'as' && words[2]) stages.push(words[2].toLowerCase());
      if (!written) {
        problems.push(`Line ${line}: FROM names no image`);
      } else if (image === undefined || image === '') {
        problems.push(`Line ${line}: FROM ${written} uses a build argument without a default; write the image's name`);
      } else if (image.toLowerCase() !== 'scratch' && !stages.slice(0, words.length >= 3 ? -1 : undefined).includes(image.toLowerCase())) {
        images.push({ image, line });
      }
    } else if ((keyword === 'COPY' || keyword === 'ADD') && /--from=/.test(rest)) {
      const from = /--from=(\S+)/.exec(rest)?.[1] ?? '';
      if (!/^\d+$/.test(from) && !stages.includes(from.toLowerCase())) images.push({ image: from, line });
    }
  }
  if (!seenFrom)
    problems.push('The Dockerfile has no FROM line: start with FROM and the base image, e.g. FROM quay.io/jupyter/base-notebook');
  return { images, problems };
}

/** Where a Dockerfile may pull from, and how large it may be. */
export interface DockerfileRules {
  allowedRegistries: readonly string[];
  /** The system's name, for messages. */
  systemName: string;
  maxBytes: number;
}

/** What is wrong with a Dockerfile under a system's rules (size, FROM lines, images outside its registries), line by line. */
export function dockerfileProblems(text: string, rules: DockerfileRules): string[] {
  const bytes = Buffer.byteLength(text);
  if (bytes > rules.maxBytes) return [`The Dockerfile has ${formatKiB(bytes)}; at most ${formatKiB(rules.maxBytes)} are allowed`];
  const parsed = dockerfileImages(text);
  const problems = [...parsed.problems];
  for (const { image, line } of parsed.images) {
    try {
      const reference = parseReference(image);
      if (!registryAllowed(rules.allowedRegistries, reference.registry, reference.repository)) {
        problems.push(
          `Line ${line}: ${reference.registry}/${reference.repository} is not among the registries ${rules.systemName} allows (${rules.allowedRegistries.join(', ')})`,
        );
      }
    } catch (err) {
      if (!(err instanceof ReferenceError)) throw err;
      problems.push(`Line ${line}: "${image}" is not an image reference: ${err.message}`);
    }
  }
  return problems;
}
