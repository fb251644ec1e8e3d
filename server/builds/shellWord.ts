/**
 * Variable substitution in one Dockerfile word, as Docker's builder does it
 * (moby/buildkit `frontend/dockerfile/shell`, `ProcessWord`): quotes and the
 * escape character removed, `$NAME` and `${NAME}` replaced, with the `-`,
 * `+` and `?` forms (with or without `:`). Pure.
 *
 * Used for what decides which images a build pulls (the image of a `FROM`,
 * the build arguments declared before it). The pattern forms (`#`, `%`, `/`)
 * exist only in newer Docker versions; a word that uses them is refused
 * rather than guessed at.
 */

/** Why a word cannot be substituted: Docker refuses it too, or it uses a form we do not evaluate. */
export class ShellWordError extends Error {
  constructor(
    message: string,
    /** The form is valid in some Docker version but not evaluated here (the word is refused, not judged). */
    readonly unsupported = false,
  ) {
    super(message);
    this.name = 'ShellWordError';
  }
}

export interface ProcessedWord {
  value: string;
  /** Names the word uses plainly (`$NAME`, `${NAME}`) that `env` does not hold: each became empty. */
  unmatched: Set<string>;
}

const EOF = '';

/** Positional and special parameters of the shell: never set in a Dockerfile. */
const SPECIAL = new Set(['@', '*', '#', '?', '-', '$', '!', '0']);

const isDigit = (ch: string) => /^\p{Nd}$/u.test(ch);
const isLetter = (ch: string) => /^\p{L}$/u.test(ch);

/** Substitutes `word` from `env` with `escape` as the escape character (`\` or a backtick). */
export function processWord(word: string, env: ReadonlyMap<string, string>, escape = '\\'): ProcessedWord {
  const chars = Array.from(word);
  let pos = 0;
  const unmatched = new Set<string>();
  const peek = () => chars[pos] ?? EOF;
  const next = () => chars[pos++] ?? EOF;

  const lookup = (name: string, plain: boolean): string | undefined => {
    const value = env.get(name);
    if (value === undefined && plain) unmatched.add(name);
    return value;
  };

  const processName = (): string => {
    let name = '';
    while (peek() !== EOF) {
      const ch = peek();
      if (name === '' && isDigit(ch)) {
        while (peek() !== EOF && isDigit(peek())) name += next();
        return name;
      }
      if (name === '' && SPECIAL.has(ch)) return next();
      if (!isLetter(ch) && !isDigit(ch) && ch !== '_') break;
      name += next();
    }
    return name;
  };

  const singleQuote = (): string => {
    next();
    let out = '';
    for (;;) {
      const ch = next();
      if (ch === EOF) throw new ShellWordError('unexpected end of statement while looking for matching single-quote');
      if (ch === "'") return out;
      out += ch;
    }
  };

  const doubleQuote = (): string => {
    next();
    let out = '';
    for (;;) {
      const ch = peek();
      if (ch === EOF) throw new ShellWordError('unexpected end of statement while looking for matching double-quote');
      if (ch === '"') {
        next();
        return out;
      }
      if (ch === '$') {
        out += dollar();
        continue;
      }
      let taken = next();
      if (taken === escape) {
        const after = peek();
        if (after === EOF) continue;
        if (after === '"' || after === '$' || after === escape) taken = next();
      }
      out += taken;
    }
  };

  const dollar = (): string => {
    next();
    if (peek() !== '{') {
      const name = processName();
      if (name === '') return '$';
      return lookup(name, true) ?? '';
    }
    next();
    const first = peek();
    if (first === EOF) throw new ShellWordError("syntax error: missing '}'");
    if (first === '{' || first === '}' || first === ':') throw new ShellWordError('syntax error: bad substitution');
    const name = processName();
    let modifier = next();
    if (modifier === '}') return lookup(name, true) ?? '';
    let nullIsUnset = false;
    if (modifier === ':') {
      nullIsUnset = true;
      modifier = next();
    }
    if (modifier === '#' || modifier === '%' || modifier === '/') {
      throw new ShellWordError(`\${${name}${nullIsUnset ? ':' : ''}${modifier}…} is a pattern substitution`, true);
    }
    if (modifier !== '-' && modifier !== '+' && modifier !== '?') {
      throw new ShellWordError(`unsupported modifier (${nullIsUnset ? ':' : ''}${modifier}) in substitution`);
    }
    let argument: string;
    try {
      argument = until('}');
    } catch (err) {
      if (pos >= chars.length) throw new ShellWordError("syntax error: missing '}'");
      throw err;
    }
    const value = lookup(name, false);
    const unset = value === undefined || (nullIsUnset && value === '');
    if (modifier === '-') return unset ? argument : (value ?? '');
    if (modifier === '+') return unset ? '' : argument;
    if (unset)
      throw new ShellWordError(
        `${name}: ${argument || (value === undefined ? 'is not allowed to be unset' : 'is not allowed to be empty')}`,
      );
    return value ?? '';
  };

  /** Processes up to `stop` (consumed), or to the end when `stop` is EOF. */
  const until = (stop: string): string => {
    let out = '';
    while (peek() !== EOF) {
      const ch = peek();
      if (stop !== EOF && ch === stop) {
        next();
        return out;
      }
      if (ch === '$') out += dollar();
      else if (ch === "'") out += singleQuote();
      else if (ch === '"') out += doubleQuote();
      else {
        let taken = next();
        if (taken === escape) {
          taken = next();
          if (taken === EOF) break;
        }
        out += taken;
      }
    }
    if (stop !== EOF) throw new ShellWordError(`unexpected end of statement while looking for matching ${stop}`);
    return out;
  };

  return { value: until(EOF), unmatched };
}
