/**
 * How a build knows its own layers from the engine, never from text a RUN
 * step can print: the Dockerfile handed to the engine gets a `LABEL` right
 * after each `FROM`, so that every layer the build commits (RUN, COPY, ADD
 * and the rest) carries the label in its configuration, and so does every
 * step's container. Base images never carry the value: it is a keyed hash of
 * the image's id, secret to the service, and the same for every build of that
 * image, so that the engine's layer cache still holds for rebuilds. Pure.
 */
import { instructions } from './dockerfile.js';

/** The label the layers of a build carry; its value is {@link layerMarker}. */
export const LAYER_LABEL = 'custom-images.layers';

/**
 * The label's value for the builds of one image: keyed with the service's
 * key (`fingerprint`, the keyring's), so no researcher can name another's,
 * and stable across rebuilds (a new key changes it once: one uncached build).
 */
export function layerMarker(fingerprint: (secret: string) => string, imageId: number): string {
  return fingerprint(`custom-images/build-layers/v1/${imageId}`);
}

/** The instruction added after each FROM, exactly as the engine prints it in its "Step n/m : …" line. */
export function labelInstruction(marker: string): string {
  return `LABEL ${LAYER_LABEL}=${marker}`;
}

/** What the engine builds: the researcher's Dockerfile with the label after each FROM, and how many were added. */
export interface LabelledDockerfile {
  text: string;
  /** Steps the engine counts that the researcher did not write (their step numbers leave these out). */
  added: number;
}

/** `text` with {@link labelInstruction} on a line of its own after the last line of each FROM instruction. */
export function labelledDockerfile(text: string, marker: string): LabelledDockerfile {
  const lines = text.split('\n');
  const escape = escapeCharacter(lines);
  const ends = new Map(
    instructions(text)
      .filter((i) => i.keyword === 'FROM')
      .map((i) => {
        const end = lastLine(lines, i.line - 1, escape);
        return [end.index, end.open] as const;
      }),
  );
  const out: string[] = [];
  lines.forEach((line, index) => {
    const open = ends.get(index);
    if (open === undefined) {
      out.push(line);
      return;
    }
    // A FROM continued past the end of the file ends there; written out, the label would join it.
    out.push(open ? withoutEscape(line, escape) : line, labelInstruction(marker));
  });
  return { text: out.join('\n'), added: ends.size };
}

const BOM = '\uFEFF';
/** A parser directive as Docker reads one: `# name = value`. */
const DIRECTIVE = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$/;
/** The directives this engine knows; any other line, an unknown directive included, ends them. */
const KNOWN_DIRECTIVES = new Set(['escape', 'syntax']);

/**
 * The escape character, as Docker's parser finds it: directives only at the
 * very top (a byte-order mark and leading whitespace skipped, names in any
 * case), one a line, up to the first line that is not a known directive
 * (a blank line, a comment, an instruction).
 */
export function escapeCharacter(lines: readonly string[]): string {
  let escape = '\\';
  for (const [index, raw] of lines.entries()) {
    const line = withoutNewline(index === 0 ? raw.replace(BOM, '') : raw).replace(/^[ \t]+/, '');
    const directive = DIRECTIVE.exec(line);
    const name = directive?.[1]?.toLowerCase() ?? '';
    if (!KNOWN_DIRECTIVES.has(name)) break;
    if (name === 'escape' && (directive?.[2] === '\\' || directive?.[2] === '`')) escape = directive[2];
  }
  return escape;
}

/**
 * The last line of the instruction that starts at line `first` (0-based): a
 * line ending in the escape character (spaces or tabs after it allowed)
 * continues on the next line that is neither blank nor a comment, as Docker's
 * parser reads it. `open`: the file ended while the instruction still continued.
 */
export function lastLine(lines: readonly string[], first: number, escape: string): { index: number; open: boolean } {
  let index = first;
  while (continues(lines[index] ?? '', escape)) {
    let next = index + 1;
    while (next < lines.length && /^(#.*)?$/.test(withoutNewline(lines[next] ?? '').trim())) next++;
    if (next >= lines.length) return { index, open: true };
    index = next;
  }
  return { index, open: false };
}

function continuation(escape: string): RegExp {
  return escape === '`' ? /`[ \t]*$/ : /\\[ \t]*$/;
}

function continues(line: string, escape: string): boolean {
  return continuation(escape).test(withoutNewline(line));
}

function withoutEscape(line: string, escape: string): string {
  const cr = line.endsWith('\r') ? '\r' : '';
  return withoutNewline(line).replace(continuation(escape), '') + cr;
}

function withoutNewline(line: string): string {
  return line.replace(/\r+$/, '');
}
