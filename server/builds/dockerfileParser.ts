/**
 * A Dockerfile read as Docker's own parser reads it (moby/buildkit
 * `frontend/dockerfile/parser`, which the engine's classic builder uses too):
 * parser directives, line continuations, comments, flags, and each
 * instruction's arguments (JSON arrays, words, name=value pairs). Pure.
 *
 * Docker's parser changed over the years in ways that read the same text
 * differently: how a line ending in `\r` or in two escape characters
 * continues, which directives exist (a `check` directive keeps the escape
 * directive after it alive), whether a JSON array may be followed by more
 * text, which escape character a flag uses. Each change is a switch of a
 * {@link DockerfileDialect}; {@link parseDockerfile} reads the text in every
 * combination, and a text that Docker versions would read differently is
 * reported as such, so that no engine sees another Dockerfile than the one
 * that was checked.
 */

/** One of the ways Docker versions differ in reading a Dockerfile. */
export interface DockerfileDialect {
  /** `legacy`: a line loses one `\r` before its `\n` (Docker ≤ 20.10); `current`: every trailing `\r`. */
  lineEnd: 'legacy' | 'current';
  /** `legacy`: a line whose last character (before spaces) is the escape character continues; `current`: not when it follows another escape character. */
  continuation: 'legacy' | 'current';
  /** `legacy`: `escape` and `syntax`, after `#` and Go's `\s`; `current`: also `check`, after `#` and any Unicode space. */
  directives: 'legacy' | 'current';
  /** `legacy`: the first JSON value counts, whatever follows it; `current`: the whole rest must be the JSON array. */
  json: 'legacy' | 'current';
  /** `legacy`: flags (`--from=…`) escape with `\` whatever the escape directive; `current`: with the escape character. */
  flagEscape: 'legacy' | 'current';
}

/** How the engine builds use reads a Dockerfile (Docker 20.10's classic builder, each switch seen on it). */
export const ENGINE_DIALECT: DockerfileDialect = {
  lineEnd: 'legacy',
  continuation: 'current',
  directives: 'legacy',
  json: 'legacy',
  flagEscape: 'legacy',
};

/** Every combination of the switches: what some Docker version may do. */
export const DIALECTS: readonly DockerfileDialect[] = combinations(Object.keys(ENGINE_DIALECT) as Array<keyof DockerfileDialect>);

function combinations(keys: ReadonlyArray<keyof DockerfileDialect>): DockerfileDialect[] {
  const all: DockerfileDialect[] = [];
  for (let mask = 0; mask < 1 << keys.length; mask++) {
    const dialect = { ...ENGINE_DIALECT };
    keys.forEach((key, bit) => {
      dialect[key] = mask & (1 << bit) ? 'current' : 'legacy';
    });
    all.push(dialect);
  }
  return all;
}

/**
 * The readings that can differ from the engine's: a switch whose difference
 * needs something the text does not have (two carriage returns, a line
 * ending in two escape characters, a `check` directive or an unusual space
 * among leading comments, text after a JSON array, a backtick) keeps the
 * engine's setting. Line ends and continuations act together, so those two
 * are combined; each other switch acts alone (the escape directive is
 * compared itself; JSON and flags are read per instruction from the same
 * joined line), so it is toggled alone: at most 7 readings, not 32.
 */
function dialectsFor(text: string): DockerfileDialect[] {
  const leadingComments = text
    .replace(/^\uFEFF/, '')
    .split('\n', 64)
    .filter((_line, i, all) => all.slice(0, i + 1).every((l) => trimLeft(l).startsWith('#')))
    .join('\n');
  const relevant: Record<keyof DockerfileDialect, boolean> = {
    lineEnd: text.includes('\r\r'),
    continuation: /(\\\\|``)[ \t\r]*(\n|$)/.test(text),
    directives: /check|[\v\u0080-\uffff]/i.test(leadingComments),
    json: /\][ \t\v\f]*[^\s]/.test(text),
    flagEscape: text.includes('`') && text.includes('--'),
  };
  const flip = (key: keyof DockerfileDialect, dialect: DockerfileDialect): DockerfileDialect => ({
    ...dialect,
    [key]: dialect[key] === 'legacy' ? 'current' : 'legacy',
  });
  const readings: DockerfileDialect[] = [];
  for (const lineEnd of relevant.lineEnd ? [false, true] : [false]) {
    for (const continuation of relevant.continuation ? [false, true] : [false]) {
      let dialect = ENGINE_DIALECT;
      if (lineEnd) dialect = flip('lineEnd', dialect);
      if (continuation) dialect = flip('continuation', dialect);
      if (lineEnd || continuation) readings.push(dialect);
    }
  }
  for (const key of ['directives', 'json', 'flagEscape'] as const) if (relevant[key]) readings.push(flip(key, ENGINE_DIALECT));
  return readings;
}

/** One instruction as Docker's parser gives it. */
export interface Instruction {
  /** The keyword in upper case (Docker matches keywords in any case). */
  keyword: string;
  /** Everything after the keyword, flags included, trimmed. */
  args: string;
  /** The physical line it starts on (1-based). */
  line: number;
  /** The last physical line it takes, continuation lines included. */
  endLine: number;
  /** The instruction as Docker keeps it: its lines joined, continuations and comments removed (an ONBUILD trigger is this text). */
  original: string;
  /** Flags before the arguments, as Docker extracted them (`--from=build`). */
  flags: string[];
  /** The arguments as Docker's parser splits them for this keyword: JSON array items, words, name and value pairs, or the whole rest. */
  values: string[];
  /** The arguments were a JSON array. */
  json: boolean;
  /** ONBUILD: the instruction it carries. */
  child?: Instruction;
}

export interface ParsedDockerfile {
  instructions: Instruction[];
  /** The escape character: `\` unless a directive set a backtick. */
  escape: string;
  /** Parser directives, by lower-case name, with the line each is on. */
  directives: Array<{ name: string; value: string; line: number }>;
  /** Why Docker refuses the text, with the line; the instructions before it are kept. */
  error?: { line: number; message: string };
}

/** Go's unicode.IsSpace. */
const SPACE = /\p{White_Space}/u;
const isSpace = (ch: string) => ch === ' ' || (ch >= '\t' && ch <= '\r') || (ch > '\x7f' && SPACE.test(ch));
/** Go's regexp `\s`. */
const isGoSpace = (ch: string | undefined) => ch === ' ' || ch === '\t' || ch === '\n' || ch === '\f' || ch === '\r';
/** The whitespace Docker splits arguments on. */
const ARG_SPACE = /[\t\v\f\r ]+/;
// Trimming walks the string: a regular expression anchored at the end backtracks over every run of spaces.
const trimLeft = (s: string) => {
  let i = 0;
  while (i < s.length && isSpace(s[i] as string)) i++;
  return s.slice(i);
};
const trimSpace = (s: string) => {
  let end = s.length;
  while (end > 0 && isSpace(s[end - 1] as string)) end--;
  return trimLeft(s.slice(0, end));
};

/**
 * `name = value` of a parser directive (after its `#`), as Docker's
 * `([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` matches it, read without a
 * regular expression (that one backtracks quadratically over spaces).
 */
function directive(text: string): [string, string] | undefined {
  let i = 0;
  if (!/[a-zA-Z]/.test(text[i] ?? '')) return undefined;
  while (/[a-zA-Z0-9]/.test(text[i] ?? '')) i++;
  const name = text.slice(0, i);
  while (isGoSpace(text[i])) i++;
  if (text[i] !== '=') return undefined;
  const rest = text.slice(i + 1);
  let start = 0;
  while (isGoSpace(rest[start])) start++;
  let end = rest.length;
  while (end > start && isGoSpace(rest[end - 1])) end--;
  if (end > start) return [name, rest.slice(start, end)];
  // Only spaces after `=`: the lazy group still takes one of them.
  return rest === '' ? undefined : [name, rest.slice(-1)];
}

/** Go's bufio.Scanner refuses longer lines: Docker fails the whole file. */
const MAX_LINE_BYTES = 64 * 1024 - 1;

class ParseError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(message);
  }
}

/** Reads `text` as Docker versions of `dialect` do. */
export function parseWith(text: string, dialect: DockerfileDialect): ParsedDockerfile {
  const state = new DirectiveState(dialect);
  const result: ParsedDockerfile = { instructions: [], escape: '\\', directives: state.seen };
  const lines = scanLines(text, dialect);
  let index = 0;
  let current = 0;
  try {
    while (index < lines.length) {
      let raw = lines[index++] ?? '';
      if (current === 0) raw = raw.replace(/^\uFEFF/, '');
      if (Buffer.byteLength(raw) > MAX_LINE_BYTES)
        throw new ParseError(`dockerfile line greater than max allowed size of ${MAX_LINE_BYTES}`, current + 1);
      const token = processLine(state, raw, true, current + 1);
      current++;
      const start = current;
      let [joined, ended] = trimContinuation(token, state.escape, dialect);
      if (ended && joined === '') continue;
      while (!ended && index < lines.length) {
        const next = lines[index++] ?? '';
        if (Buffer.byteLength(next) > MAX_LINE_BYTES)
          throw new ParseError(`dockerfile line greater than max allowed size of ${MAX_LINE_BYTES}`, current + 1);
        const processed = processLine(state, next, false, current + 1);
        current++;
        if (isComment(next)) continue;
        if (trimLeft(processed) === '') continue;
        let part: string;
        [part, ended] = trimContinuation(processed, state.escape, dialect);
        joined += part;
      }
      const instruction = instructionFromLine(joined, state.escape, dialect, start, current);
      result.instructions.push(instruction);
    }
    if (result.instructions.length === 0) throw new ParseError('file with no instructions', current);
  } catch (err) {
    if (!(err instanceof ParseError)) throw err;
    result.error = { line: err.line, message: err.message };
  }
  result.escape = state.escape;
  return result;
}

/** Lines as Go's scanner gives them: split at `\n` only, the line end removed as the dialect does. */
function scanLines(text: string, dialect: DockerfileDialect): string[] {
  if (text === '') return [];
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines.map((line) => {
    if (dialect.lineEnd === 'legacy') return line.endsWith('\r') ? line.slice(0, -1) : line;
    let end = line.length;
    while (end > 0 && line[end - 1] === '\r') end--;
    return line.slice(0, end);
  });
}

const isComment = (line: string) => trimLeft(line).startsWith('#');

/** Parser directives: only at the top, before any instruction, comment or blank line. */
class DirectiveState {
  escape = '\\';
  done = false;
  readonly seen: Array<{ name: string; value: string; line: number }> = [];
  private readonly known: ReadonlySet<string>;

  constructor(private readonly dialect: DockerfileDialect) {
    this.known = new Set(dialect.directives === 'legacy' ? ['escape', 'syntax'] : ['escape', 'syntax', 'check']);
  }

  consider(line: string, number: number): void {
    if (this.done) return;
    let match: [string, string] | undefined;
    if (!line.startsWith('#')) match = undefined;
    else if (this.dialect.directives === 'legacy') {
      let i = 1;
      while (isGoSpace(line[i])) i++;
      match = directive(line.slice(i));
    } else {
      match = directive(trimLeft(line.slice(1)));
    }
    const name = match?.[0].toLowerCase() ?? '';
    if (!match || !this.known.has(name)) {
      this.done = true;
      return;
    }
    if (this.seen.some((d) => d.name === name)) throw new ParseError(`only one ${name} parser directive can be used`, number);
    const value = match[1];
    this.seen.push({ name, value, line: number });
    if (name === 'escape') {
      if (value !== '`' && value !== '\\') throw new ParseError(`invalid escape token '${value}' does not match \` or \\`, number);
      this.escape = value;
    }
  }
}

/** A line as the parser handles it: leading space removed (first lines only), directives read, a comment emptied. */
function processLine(state: DirectiveState, line: string, stripLeft: boolean, number: number): string {
  const token = stripLeft ? trimLeft(line) : line;
  state.consider(token, number);
  return isComment(token) ? '' : token;
}

/** Removes a continuation (the escape character at the end of the line); false when the line ends the instruction. */
function trimContinuation(line: string, escape: string, dialect: DockerfileDialect): [string, boolean] {
  const e = escape === '`' ? '`' : '\\\\';
  const pattern = dialect.continuation === 'legacy' ? new RegExp(`${e}[ \\t]*$`) : new RegExp(`([^${e}])${e}[ \\t]*$|^${e}[ \\t]*$`);
  const match = pattern.exec(line);
  if (!match) return [line, true];
  return [line.slice(0, match.index) + (match[1] ?? ''), false];
}

/** Splits a joined line into keyword, flags and arguments, and reads the arguments as Docker does for that keyword. */
function instructionFromLine(line: string, escape: string, dialect: DockerfileDialect, start: number, end: number): Instruction {
  const trimmed = trimSpace(line);
  const split = ARG_SPACE.exec(trimmed);
  const keyword = split ? trimmed.slice(0, split.index) : trimmed;
  const afterKeyword = split ? trimmed.slice(split.index + split[0].length) : '';
  const { rest, flags } = split ? extractFlags(afterKeyword, dialect.flagEscape === 'legacy' ? '\\' : escape) : { rest: '', flags: [] };
  const args = trimSpace(rest);
  const instruction: Instruction = {
    keyword: keyword.toUpperCase(),
    args: afterKeyword,
    line: start,
    endLine: end,
    original: line,
    flags,
    values: [],
    json: false,
  };
  const lower = keyword.toLowerCase();
  switch (lower) {
    case 'add':
    case 'copy':
    case 'volume': {
      const json = jsonArray(args, dialect, start);
      if (json) Object.assign(instruction, { values: json, json: true });
      else instruction.values = whitespaceList(args);
      break;
    }
    case 'cmd':
    case 'entrypoint':
    case 'run':
    case 'shell': {
      const json = args === '' ? undefined : jsonArray(args, dialect, start);
      if (json) Object.assign(instruction, { values: json, json: true });
      else instruction.values = args === '' ? [] : [args];
      break;
    }
    case 'arg':
      instruction.values = parseWords(args, escape);
      break;
    case 'env':
    case 'label':
      instruction.values = nameValues(args, lower.toUpperCase(), escape, start);
      break;
    case 'expose':
    case 'from':
      instruction.values = whitespaceList(args);
      break;
    case 'healthcheck':
      Object.assign(instruction, healthcheck(args, dialect, start));
      break;
    case 'maintainer':
    case 'stopsignal':
    case 'user':
    case 'workdir':
      instruction.values = args === '' ? [] : [args];
      break;
    case 'onbuild':
      if (args !== '') instruction.child = instructionFromLine(args, escape, dialect, start, end);
      break;
    default:
      // Docker's parser keeps an unknown instruction without arguments; the builder then refuses it.
      instruction.values = [''];
  }
  return instruction;
}

/**
 * Flags at the start of the arguments (`--from=build --chown=1 …`), as
 * Docker's extractBuilderFlags reads them: words starting with `--`, quotes
 * removed, `--` alone ending them. Returns the rest of the line.
 */
function extractFlags(line: string, escape: string): { rest: string; flags: string[] } {
  const flags: string[] = [];
  const chars = Array.from(line);
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let word = '';
  let quote = '';
  let blankOk = false;
  let offset = 0; // in UTF-16 units, for slicing the rest
  for (let pos = 0; pos <= chars.length; pos++) {
    const ch = chars[pos] ?? '';
    const atEnd = pos === chars.length;
    if (phase === 'spaces') {
      if (atEnd) break;
      if (isSpace(ch)) {
        offset += ch.length;
        continue;
      }
      if (ch !== '-' || pos + 1 === chars.length || chars[pos + 1] !== '-') return { rest: line.slice(offset), flags };
      phase = 'word';
    }
    if (atEnd) {
      if (word !== '--' && (blankOk || word.length > 0)) flags.push(word);
      break;
    }
    if (phase === 'word') {
      if (isSpace(ch)) {
        phase = 'spaces';
        if (word === '--') return { rest: line.slice(offset), flags };
        if (blankOk || word.length > 0) flags.push(word);
        word = '';
        blankOk = false;
        offset += ch.length;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOk = true;
        phase = 'quote';
        offset += ch.length;
        continue;
      }
      let taken = ch;
      if (ch === escape) {
        offset += ch.length;
        if (pos + 1 === chars.length) continue;
        taken = chars[++pos] ?? '';
      }
      word += taken;
      offset += taken.length;
      continue;
    }
    // in a quote
    if (ch === quote) {
      phase = 'word';
      offset += ch.length;
      continue;
    }
    let taken = ch;
    if (ch === escape) {
      offset += ch.length;
      if (pos + 1 === chars.length) {
        phase = 'word';
        continue;
      }
      taken = chars[++pos] ?? '';
    }
    word += taken;
    offset += taken.length;
  }
  return { rest: '', flags };
}

/** Arguments split at spaces and tabs, as Docker's parseStringsWhitespaceDelimited does. */
function whitespaceList(args: string): string[] {
  return args === '' ? [] : args.split(ARG_SPACE);
}

/**
 * The JSON array form, when the arguments are one: its strings. A JSON array
 * with anything but strings is an error in Docker; other text is not JSON.
 */
function jsonArray(args: string, dialect: DockerfileDialect, line: number): string[] | undefined {
  const text = trimLeft(args);
  if (!text.startsWith('[')) return undefined;
  const json = dialect.json === 'legacy' ? firstJsonValue(text) : text;
  if (json === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed)) return undefined;
  if (!parsed.every((item) => typeof item === 'string'))
    throw new ParseError('when using JSON array syntax, arrays must be comprised of strings only', line);
  return parsed as string[];
}

/** The text of the first JSON value in `text` (which starts with `[`), as Go's json.Decoder reads one value and leaves the rest. */
function firstJsonValue(text: string): string | undefined {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === '[' || ch === '{') depth++;
    else if (ch === ']' || ch === '}') {
      depth--;
      if (depth === 0) return text.slice(0, i + 1);
    }
  }
  return undefined;
}

/**
 * Words of an ARG, ENV or LABEL line as Docker's parseWords splits them:
 * at unquoted whitespace, keeping quotes and escapes (they are removed when
 * the value is substituted).
 */
export function parseWords(rest: string, escape: string): string[] {
  const words: string[] = [];
  const chars = Array.from(rest);
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let quote = '';
  let blankOk = false;
  let word = '';
  for (let pos = 0; pos <= chars.length; pos++) {
    const atEnd = pos === chars.length;
    let ch = chars[pos] ?? '';
    if (phase === 'spaces') {
      if (atEnd) break;
      if (isSpace(ch)) continue;
      phase = 'word';
    }
    if (atEnd) {
      if (blankOk || word.length > 0) words.push(word);
      break;
    }
    if (phase === 'word') {
      if (isSpace(ch)) {
        phase = 'spaces';
        if (blankOk || word.length > 0) words.push(word);
        word = '';
        blankOk = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOk = true;
        phase = 'quote';
      }
      if (ch === escape) {
        if (pos + 1 === chars.length) continue;
        word += ch;
        ch = chars[++pos] ?? '';
      }
      word += ch;
      continue;
    }
    // in a quote
    if (ch === quote) phase = 'word';
    if (ch === escape && quote !== "'") {
      if (pos + 1 === chars.length) {
        phase = 'word';
        continue;
      }
      word += ch;
      ch = chars[++pos] ?? '';
    }
    word += ch;
  }
  return words;
}

/** ENV and LABEL: `name value` (the old form) or `name=value …`, as name and value pairs. */
function nameValues(args: string, keyword: string, escape: string, line: number): string[] {
  const words = parseWords(args, escape);
  if (words.length === 0) return [];
  if (!(words[0] ?? '').includes('=')) {
    const split = ARG_SPACE.exec(args);
    if (!split) throw new ParseError(`${keyword} must have two arguments`, line);
    return [args.slice(0, split.index), args.slice(split.index + split[0].length)];
  }
  return words.flatMap((word) => {
    const at = word.indexOf('=');
    if (at < 0) throw new ParseError(`Syntax error - can't find = in "${word}". Must be of the form: name=value`, line);
    return [word.slice(0, at), word.slice(at + 1)];
  });
}

/** HEALTHCHECK: its type (CMD, NONE) then the command, JSON or not. */
function healthcheck(args: string, dialect: DockerfileDialect, line: number): Pick<Instruction, 'values' | 'json'> {
  const sep = SPACE.exec(args);
  const type = sep ? args.slice(0, sep.index) : args;
  if (type === '') return { values: [], json: false };
  const command = sep ? trimLeft(args.slice(sep.index)) : '';
  if (command === '') return { values: [type], json: false };
  const json = jsonArray(command, dialect, line);
  return json ? { values: [type, ...json], json: true } : { values: [type, command], json: false };
}

/** What {@link parseDockerfile} found. */
export interface DockerfileReading extends ParsedDockerfile {
  /** The first line that Docker versions read differently, and how. */
  disagreement?: { line: number; message: string };
}

/**
 * Reads a Dockerfile as the engine does, and says where Docker versions
 * would read it differently (then no version may build it unchecked).
 */
export function parseDockerfile(text: string): DockerfileReading {
  const engine = parseWith(text, ENGINE_DIALECT);
  if (engine.error) return engine;
  const reference = signature(engine);
  for (const dialect of dialectsFor(text)) {
    const other = parseWith(text, dialect);
    if (other.error) continue;
    const theirs = signature(other);
    if (theirs.escape !== reference.escape) {
      const line = other.directives.find((d) => d.name === 'escape')?.line ?? engine.directives.find((d) => d.name === 'escape')?.line ?? 1;
      return {
        ...engine,
        disagreement: {
          line,
          message: 'Docker versions disagree on whether this escape directive applies; put # escape= on the first line',
        },
      };
    }
    const count = Math.max(reference.lines.length, theirs.lines.length);
    for (let i = 0; i < count; i++) {
      if (reference.lines[i] !== theirs.lines[i]) {
        const line = Math.min(engine.instructions[i]?.line ?? Infinity, other.instructions[i]?.line ?? Infinity);
        return {
          ...engine,
          disagreement: {
            line: Number.isFinite(line) ? line : 1,
            message: 'Docker versions read this instruction differently (its line ends, escape characters or JSON form); write it plainly',
          },
        };
      }
    }
  }
  return engine;
}

function signature(parsed: ParsedDockerfile): { escape: string; lines: string[] } {
  const describe = (i: Instruction): string =>
    JSON.stringify([i.keyword, i.line, i.endLine, i.original, i.flags, i.values, i.json, i.child ? describe(i.child) : null]);
  return { escape: parsed.escape, lines: parsed.instructions.map(describe) };
}
