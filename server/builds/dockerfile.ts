/**
 * What a Dockerfile makes the engine fetch, and what it may not: the images
 * its `FROM`, `COPY --from` and `RUN --mount=from=` name (build arguments
 * declared before the first FROM substituted as Docker does), held to the
 * system's allowed registries; no `ADD` of a URL or git source (the engine
 * would fetch it itself, from the host's network, whatever the build's
 * network); `ONBUILD` triggers held to the same rules as the instruction they
 * carry, including where a later `FROM` of their stage runs them in the same
 * build. Pure; the text is read as Docker reads it (dockerfileParser.ts).
 */
import { parseReference, ReferenceError } from '../registry/reference.js';
import { registryAllowed } from '../systems/schema.js';
import { formatKiB } from '../format.js';
import { ENGINE_DIALECT, parseDockerfile, parseWith, parseWords, type Instruction } from './dockerfileParser.js';
import { processWord, ShellWordError } from './shellWord.js';

export type { Instruction } from './dockerfileParser.js';

/** The instructions of a Dockerfile as the engine reads them (continuations joined, comments dropped), each with its first and last line. */
export function instructions(text: string): Instruction[] {
  return parseWith(text, ENGINE_DIALECT).instructions;
}

/** An image a Dockerfile pulls, as written after substitution, with the line that names it. */
export interface PulledImage {
  image: string;
  line: number;
  /** `from`: a base image (its build triggers run in this build); `copy`: files copied from it (`COPY --from`, `RUN --mount=from=`). */
  kind: 'from' | 'copy';
  /** For a base image: the stages before it, which its build triggers may name. */
  stages?: string[];
}

export interface DockerfileImages {
  /** Images pulled from registries (not `scratch`, not an earlier stage). */
  images: PulledImage[];
  /** Problems a researcher must fix, each naming its line. */
  problems: string[];
}

interface Finding {
  line: number;
  message: string;
}

/** What checking one instruction found: images it pulls, and what is wrong with it. */
interface Checked {
  images: PulledImage[];
  findings: Finding[];
}

/** Stages built so far, by lower-case name ('' for an unnamed one); a `--from` names one of them, by name or index. */
type Stages = readonly string[];

const STAGE_NAME = /^[a-z][a-z0-9-_.]*$/;
/** The instructions Docker's builder knows; it refuses a Dockerfile with any other. */
const KEYWORDS = new Set([
  'ADD',
  'ARG',
  'CMD',
  'COPY',
  'ENTRYPOINT',
  'ENV',
  'EXPOSE',
  'FROM',
  'HEALTHCHECK',
  'LABEL',
  'MAINTAINER',
  'ONBUILD',
  'RUN',
  'SHELL',
  'STOPSIGNAL',
  'USER',
  'VOLUME',
  'WORKDIR',
]);
const HEREDOC = /^(\d*)<<(-?)([^<]*)$/;
const GO_SPACE = '[\\t\\n\\f\\r ]';
const ONBUILD_PREFIX = new RegExp(`^${GO_SPACE}*ONBUILD${GO_SPACE}*`, 'i');
const INT64_MAX = 2n ** 63n - 1n;

/**
 * Whether Docker (any version, the classic builder or BuildKit) fetches an
 * ADD source itself: a URL of any scheme, a git source (`git@host:repo`,
 * `user@host:path`) or the legacy `github.com/…` form.
 */
export function isRemoteSource(source: string): boolean {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source) || /^git@/i.test(source) || /^github\.com\//i.test(source)) return true;
  // user@host:path, as git and scp write it: an @ and after it a colon, before any / (found without backtracking).
  const head = source.split('/', 1)[0] ?? '';
  const at = head.indexOf('@');
  const colon = head.indexOf(':', at + 1);
  return at > 0 && colon > at + 1 && !/\s/.test(head.slice(0, colon));
}

/** The images `text` builds from, and what is wrong with it (line by line). */
export function dockerfileImages(text: string): DockerfileImages {
  const reading = parseDockerfile(text);
  if (reading.error) {
    return { images: [], problems: [`Line ${reading.error.line}: Docker cannot read this line: ${reading.error.message}`] };
  }
  if (reading.disagreement) return { images: [], problems: [`Line ${reading.disagreement.line}: ${reading.disagreement.message}`] };
  const escape = reading.escape;
  const images: PulledImage[] = [];
  const findings: Finding[] = [];
  const take = (checked: Checked) => {
    images.push(...checked.images);
    findings.push(...checked.findings);
  };
  const meta = new Map<string, string>();
  const stages: string[] = [];
  /** Each stage's ONBUILD triggers, as Docker will parse them when a later FROM of that stage runs them. */
  const triggersOf: Instruction[][] = [];
  let stage = -1;
  let current: { name: string; triggers: Instruction[] } | undefined;

  for (const instruction of reading.instructions) {
    const { keyword, line } = instruction;
    if (!KEYWORDS.has(keyword)) {
      findings.push({ line, message: `${keyword.slice(0, 40)} is not an instruction Docker knows` });
      continue;
    }
    if (keyword === 'FROM') {
      if (current) {
        stages.push(current.name);
        triggersOf.push(current.triggers);
      }
      stage++;
      const from = fromInstruction(instruction, meta, escape, stages);
      findings.push(...from.findings);
      current = { name: from.name, triggers: [] };
      if (from.stage !== undefined) {
        // A FROM of an earlier stage runs that stage's ONBUILD triggers here, with the stages built so far.
        for (const trigger of triggersOf[from.stage] ?? []) take(checkInstruction(trigger, stages, 'run'));
      } else if (from.image) {
        images.push({ image: from.image, line, kind: 'from', stages: [...stages] });
      }
      continue;
    }
    if (!current) {
      if (keyword === 'ARG') findings.push(...metaArgs(instruction, meta, escape));
      else findings.push({ line, message: `${keyword} comes before the first FROM; only ARG may` });
      continue;
    }
    if (keyword === 'ONBUILD') {
      const trigger = onbuildTrigger(instruction);
      if ('message' in trigger) {
        findings.push(trigger);
        continue;
      }
      take(checkInstruction(instruction.child as Instruction, stages, 'stored'));
      take(checkInstruction(trigger, stages, 'stored'));
      current.triggers.push(trigger);
      continue;
    }
    take(checkInstruction(instruction, stages, 'run'));
  }
  if (stage < 0)
    return {
      images,
      problems: ['The Dockerfile has no FROM line: start with FROM and the base image, e.g. FROM quay.io/jupyter/base-notebook'],
    };
  // An ONBUILD's instruction is checked as written and as its trigger will be read: one finding each.
  return { images, problems: [...new Set(findings.map((f) => `Line ${f.line}: ${f.message}`))] };
}

/** Build arguments declared before the first FROM: the only variables a FROM line can use. */
function metaArgs(instruction: Instruction, meta: Map<string, string>, escape: string): Finding[] {
  const findings: Finding[] = [];
  for (const word of instruction.values) {
    const at = word.indexOf('=');
    const name = at < 0 ? word : word.slice(0, at);
    if (name === '') {
      findings.push({ line: instruction.line, message: 'ARG names no argument' });
      continue;
    }
    if (at < 0) {
      meta.delete(name);
      continue;
    }
    try {
      meta.set(name, processWord(word.slice(at + 1), meta, escape).value);
    } catch (err) {
      if (!(err instanceof ShellWordError)) throw err;
      meta.delete(name);
      findings.push({ line: instruction.line, message: `ARG ${name}: ${err.message}` });
    }
  }
  return findings;
}

/** A FROM line: the image it pulls, or the earlier stage it continues, and its stage name. */
function fromInstruction(
  instruction: Instruction,
  meta: ReadonlyMap<string, string>,
  escape: string,
  stages: Stages,
): { image?: string; stage?: number; name: string; findings: Finding[] } {
  const { line, values } = instruction;
  const findings: Finding[] = [];
  for (const flag of instruction.flags) {
    if (!/^--platform=/.test(flag)) findings.push({ line, message: `FROM takes no flag but --platform (${flag} given)` });
  }
  const written = values[0] ?? '';
  let name = '';
  if (values.length === 3 && values[1]?.toLowerCase() === 'as') {
    name = (values[2] ?? '').toLowerCase();
    if (!STAGE_NAME.test(name))
      findings.push({ line, message: `"${values[2]}" is not a stage name: a letter, then letters, digits, - _ or .` });
    else if (stages.includes(name)) findings.push({ line, message: `the stage name ${name} is used twice` });
  } else if (values.length !== 1) {
    findings.push({ line, message: written ? 'FROM takes an image and optionally AS and a stage name' : 'FROM names no image' });
    return { name, findings };
  }
  let image: string;
  try {
    const processed = processWord(written, meta, escape);
    if (processed.unmatched.size > 0) {
      findings.push({ line, message: `FROM ${written} uses a build argument without a default; write the image's name` });
      return { name, findings };
    }
    image = processed.value;
  } catch (err) {
    if (!(err instanceof ShellWordError)) throw err;
    findings.push({ line, message: `FROM ${written} cannot be read: ${err.message}; write the image's name` });
    return { name, findings };
  }
  if (image === '') {
    findings.push({ line, message: `FROM ${written} names no image; write the image's name` });
    return { name, findings };
  }
  const earlier = stages.indexOf(image.toLowerCase());
  if (earlier >= 0) return { stage: earlier, name, findings };
  if (image === 'scratch') return { name, findings };
  return { image, name, findings };
}

/** An ONBUILD line's trigger as Docker stores it and later parses it (the text after ONBUILD, on its own), or why it cannot be one. */
function onbuildTrigger(instruction: Instruction): Instruction | Finding {
  const { line, child } = instruction;
  if (!child) return { line, message: 'ONBUILD names no instruction' };
  if (['ONBUILD', 'FROM', 'MAINTAINER'].includes(child.keyword)) return { line, message: `${child.keyword} cannot be an ONBUILD trigger` };
  const expression = instruction.original.replace(ONBUILD_PREFIX, '');
  const parsed = triggerInstruction(expression);
  if ('message' in parsed) return { line, message: `ONBUILD ${parsed.message}` };
  return { ...parsed, line, endLine: instruction.endLine };
}

/** A build trigger's text read as Docker reads it when the trigger runs: as a Dockerfile of its own. */
function triggerInstruction(expression: string): Instruction | { message: string } {
  const reading = parseDockerfile(expression);
  if (reading.error) return { message: `cannot be read: ${reading.error.message}` };
  if (reading.disagreement) return { message: reading.disagreement.message };
  const [only, ...more] = reading.instructions;
  if (!only || more.length > 0) return { message: 'must be a single instruction' };
  return only;
}

/**
 * The rules for one instruction. `when` says whether it runs in this build
 * with these stages (`run`), or is a trigger stored in the image to run in
 * a later build (`stored`): there a `--from` that could name a stage of that
 * build is checked when it runs; one that can only be an image is checked now.
 */
function checkInstruction(instruction: Instruction, stages: Stages, when: 'run' | 'stored'): Checked {
  const { keyword, line } = instruction;
  const checked: Checked = { images: [], findings: [] };
  const add = (message: string) => checked.findings.push({ line, message });
  if (keyword === 'ADD') {
    const sources = instruction.values.length > 1 ? instruction.values.slice(0, -1) : instruction.values;
    for (const source of sources) {
      if (isRemoteSource(source)) {
        add(
          `ADD would make the engine fetch ${source} from the network; add the file to the build context instead (upload it, or put it in the repository)`,
        );
      } else if (source.includes('$')) {
        add(`ADD ${source}: a source with a variable cannot be checked (it could be a URL); write the path, or use COPY`);
      }
    }
  }
  if ((keyword === 'ADD' || keyword === 'COPY' || keyword === 'RUN') && !instruction.json && instruction.original.includes('<<')) {
    const heredoc = parseWords(instruction.original, '\\').find((word) => (HEREDOC.exec(word)?.[3] ?? '') !== '');
    if (heredoc) add(`${keyword} ${heredoc}: heredocs are not supported by this builder; put the text in a file of the build context`);
  }
  const froms: string[] = [];
  for (const flag of instruction.flags) {
    if (keyword === 'COPY' && /^--from(=|$)/.test(flag)) froms.push(flag.slice('--from='.length));
    if (keyword === 'RUN' && /^--mount(=|$)/.test(flag)) {
      for (const option of flag.slice('--mount='.length).split(',')) {
        const [key = '', ...value] = option.split('=');
        if (key.trim().toLowerCase() === 'from') froms.push(value.join('='));
      }
    }
  }
  for (const from of froms) {
    const what = keyword === 'COPY' ? 'COPY --from' : 'RUN --mount=from';
    if (from === '') add(`${what} names nothing`);
    else if (from.includes('$')) add(`${what}=${from}: a variable cannot be checked; write the stage or image`);
    else if (stageIndex(from) !== undefined) {
      const index = stageIndex(from) as bigint;
      if (when === 'run' && (index < 0n || index >= BigInt(stages.length))) add(`${what}=${from}: there is no earlier stage ${from}`);
    } else if (stages.includes(from.toLowerCase())) {
      // an earlier stage of this build
    } else if (when === 'stored' && STAGE_NAME.test(from.toLowerCase())) {
      // may name a stage of the build that runs the trigger: checked there, as a base image's trigger
    } else {
      checked.images.push({ image: from, line, kind: 'copy' });
    }
  }
  return checked;
}

/** A `--from` Docker takes as a stage index (a base-10 integer), or undefined. */
function stageIndex(from: string): bigint | undefined {
  if (!/^[+-]?\d+$/.test(from)) return undefined;
  const value = BigInt(from);
  return value > INT64_MAX || value < -INT64_MAX - 1n ? undefined : value;
}

/**
 * What is wrong with a base image's build triggers (its config's `OnBuild`),
 * run at a FROM after `stages`: each trigger held to the rules of the
 * instruction it is. Returns the images they pull, for the same checks as
 * the Dockerfile's own.
 */
export function triggerFindings(
  triggers: readonly string[],
  stages: Stages,
): { images: Array<PulledImage & { trigger: string }>; problems: Array<{ trigger: string; message: string }> } {
  const images: Array<PulledImage & { trigger: string }> = [];
  const problems: Array<{ trigger: string; message: string }> = [];
  for (const trigger of triggers) {
    const parsed = triggerInstruction(trigger);
    if ('message' in parsed) {
      problems.push({ trigger, message: `the trigger ${parsed.message}` });
      continue;
    }
    if (['ONBUILD', 'FROM', 'MAINTAINER'].includes(parsed.keyword)) {
      problems.push({ trigger, message: `${parsed.keyword} cannot be a trigger` });
      continue;
    }
    const checked = checkInstruction(parsed, stages, 'run');
    images.push(...checked.images.map((image) => ({ ...image, trigger })));
    problems.push(...checked.findings.map((f) => ({ trigger, message: f.message })));
  }
  return { images, problems };
}

/** Where a Dockerfile may pull from, and how large it may be. */
export interface DockerfileRules {
  allowedRegistries: readonly string[];
  /** The system's name, for messages. */
  systemName: string;
  maxBytes: number;
}

/** Why `image` may not be pulled under `rules`, or undefined when it may. */
export function imageProblem(image: string, rules: Pick<DockerfileRules, 'allowedRegistries' | 'systemName'>): string | undefined {
  try {
    const reference = parseReference(image);
    if (registryAllowed(rules.allowedRegistries, reference.registry, reference.repository)) return undefined;
    return `${reference.registry}/${reference.repository} is not among the registries ${rules.systemName} allows (${rules.allowedRegistries.join(', ')})`;
  } catch (err) {
    if (!(err instanceof ReferenceError)) throw err;
    return `"${image}" is not an image reference: ${err.message}`;
  }
}

/** What is wrong with a Dockerfile under a system's rules (size, how it reads, what it fetches), line by line. */
export function dockerfileProblems(text: string, rules: DockerfileRules): string[] {
  const bytes = Buffer.byteLength(text);
  if (bytes > rules.maxBytes) return [`The Dockerfile has ${formatKiB(bytes)}; at most ${formatKiB(rules.maxBytes)} are allowed`];
  const parsed = dockerfileImages(text);
  const problems = [...parsed.problems];
  for (const { image, line } of parsed.images) {
    const problem = imageProblem(image, rules);
    if (problem) problems.push(`Line ${line}: ${problem}`);
  }
  return problems;
}

/** A base image pinned to the digest its checks read. */
export interface BasePin {
  /** The line of its FROM. */
  line: number;
  /** The image as the FROM names it, after substitution. */
  image: string;
  digest: string;
}

/**
 * The Dockerfile with each pinned FROM naming its image by the digest that
 * was checked (`registry/repository@sha256:…`), so that the engine builds from exactly
 * that content: not from a tag pushed again since, nor from an older copy
 * it holds under the same name. The FROM's lines are replaced by one line
 * and blank lines, so every other instruction keeps its line.
 */
export function pinBaseImages(text: string, pins: readonly BasePin[]): string {
  const lines = text.split('\n');
  for (const instruction of instructions(text)) {
    const pin = pins.find((p) => p.line === instruction.line);
    if (instruction.keyword !== 'FROM' || !pin) continue;
    const reference = parseReference(pin.image);
    const stage = instruction.values.length === 3 ? ` AS ${instruction.values[2]}` : '';
    const flags = instruction.flags.map((flag) => `${flag} `).join('');
    lines[instruction.line - 1] = `FROM ${flags}${reference.registry}/${reference.repository}@${pin.digest}${stage}`;
    for (let i = instruction.line; i < instruction.endLine; i++) lines[i] = '';
  }
  return lines.join('\n');
}
