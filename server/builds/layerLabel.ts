/**
 * How a build knows its own layers from the engine, never from text a RUN
 * step can print: the Dockerfile handed to the engine gets a `LABEL` right
 * after each `FROM`, so that every layer the build commits (RUN, COPY, ADD
 * and the rest) carries the label in its configuration, and so does every
 * step's container. Base images never carry the value: it is a keyed hash of
 * the image's id, secret to the service, and the same for every build of that
 * image, so that the engine's layer cache still holds for rebuilds. Pure.
 */
import { ENGINE_DIALECT, parseWith } from './dockerfileParser.js';

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
  // Read as the engine reads it (builds/dockerfileParser.ts): the same instructions, ends and escape character.
  const { instructions, escape } = parseWith(text, ENGINE_DIALECT);
  const froms = instructions.filter((i) => i.keyword === 'FROM');
  const continued = escape === '`' ? /`[ \t]*(\r?)$/ : /\\[ \t]*(\r?)$/;
  for (const from of froms) {
    // A FROM continued past the end of the file (blank and comment lines after it) ends there; written out as it
    // is, the label would join it: its last written line loses the escape character.
    let last = from.endLine - 1;
    while (last > from.line - 1 && /^[ \t]*(#.*)?\r?$/.test(lines[last] ?? '')) last--;
    if (last !== from.endLine - 1 || from.endLine === lines.length) lines[last] = (lines[last] ?? '').replace(continued, '$1');
  }
  const ends = new Set(froms.map((i) => i.endLine - 1));
  const out = lines.flatMap((line, index) => (ends.has(index) ? [line, labelInstruction(marker)] : [line]));
  return { text: out.join('\n'), added: ends.size };
}
