/**
 * The Dockerfile reader held to Docker's own cases. Cases are ported from
 * moby/buildkit and moby/moby (Apache-2.0, Copyright Docker, Inc. and the
 * BuildKit authors): the parser's testfiles and parser_test.go
 * (`frontend/dockerfile/parser`), line_parsers_test.go, and the shell
 * lexer's envVarTest (`frontend/dockerfile/shell`). Where an old testfile's
 * expectation differs from what Docker 20.10's engine does today (empty and
 * comment lines inside a continuation, an indented directive), the
 * expectation is the engine's, seen on it with the classic builder.
 */
import { describe, expect, it } from 'vitest';
import {
  DIALECTS,
  ENGINE_DIALECT,
  parseDockerfile,
  parseWith,
  parseWords,
  type Instruction,
} from '../../server/builds/dockerfileParser.js';
import { processWord } from '../../server/builds/shellWord.js';

/** Docker's AST dump (`Node.Dump`): `(keyword ["flags"] "value" …)`, ONBUILD's instruction nested. */
function dump(text: string): string[] {
  const reading = parseWith(text, ENGINE_DIALECT);
  if (reading.error) throw new Error(`line ${reading.error.line}: ${reading.error.message}`);
  const one = (i: Instruction): string => {
    let s = i.keyword.toLowerCase();
    if (i.flags.length > 0) s += ` [${i.flags.map((f) => JSON.stringify(f)).join(' ')}]`;
    if (i.child) s += ` (${one(i.child)})`;
    for (const v of i.values) s += ` ${JSON.stringify(v)}`;
    return s;
  };
  return reading.instructions.map((i) => `(${one(i)})`);
}

describe("Docker's parser testfiles", () => {
  const cases: Array<[string, string, string[]]> = [
    [
      'ADD-COPY-with-JSON',
      'FROM\tubuntu:14.04\nMAINTAINER\tSeongyeol Lim <seongyeol37@gmail.com>\n\nCOPY\t.\t/go/src/github.com/docker/docker\nADD\t\t.\t/\nADD\t\tnull /\nCOPY\tnullfile /tmp\nADD\t\t[ "vimrc", "/tmp" ]\nCOPY\t[ "bashrc", "/tmp" ]\nCOPY\t[ "test file", "/tmp" ]\nADD\t\t[ "test file", "/tmp/test file" ]\n',
      [
        '(from "ubuntu:14.04")',
        '(maintainer "Seongyeol Lim <seongyeol37@gmail.com>")',
        '(copy "." "/go/src/github.com/docker/docker")',
        '(add "." "/")',
        '(add "null" "/")',
        '(copy "nullfile" "/tmp")',
        '(add "vimrc" "/tmp")',
        '(copy "bashrc" "/tmp")',
        '(copy "test file" "/tmp")',
        '(add "test file" "/tmp/test file")',
      ],
    ],
    [
      'continueIndent (a comment inside a continuation is skipped, as the engine does)',
      'FROM ubuntu:14.04\n\nRUN echo hello\\\n  world\\\n  goodnight  \\\n  moon\\\n  light\\\nning\nRUN echo hello  \\\n  world\nRUN echo hello  \\\nworld\nRUN echo hello \\\ngoodbye\\\nfrog\nRUN echo hi \\\n \\\n world \\\n\\\n good\\\n\\\nnight\nRUN echo goodbye\\\nfrog\nRUN echo good\\\nbye\\\nfrog\n\nRUN echo hello \\\n# this is a comment that breaks escape continuation\nRUN echo this is some more useful stuff\n',
      [
        '(from "ubuntu:14.04")',
        '(run "echo hello  world  goodnight    moon  lightning")',
        '(run "echo hello    world")',
        '(run "echo hello  world")',
        '(run "echo hello goodbyefrog")',
        '(run "echo hi   world  goodnight")',
        '(run "echo goodbyefrog")',
        '(run "echo goodbyefrog")',
        '(run "echo hello RUN echo this is some more useful stuff")',
      ],
    ],
    [
      'health',
      'FROM debian\nADD check.sh main.sh /app/\nCMD /app/main.sh\nHEALTHCHECK\nHEALTHCHECK --interval=5s --timeout=3s --retries=1 --grace=4s --exit-on-unhealthy \\\n  CMD /app/check.sh --quiet\nHEALTHCHECK CMD\nHEALTHCHECK   CMD   a b\nHEALTHCHECK --timeout=3s CMD ["foo"]\nHEALTHCHECK CONNECT TCP 7000\n',
      [
        '(from "debian")',
        '(add "check.sh" "main.sh" "/app/")',
        '(cmd "/app/main.sh")',
        '(healthcheck)',
        '(healthcheck ["--interval=5s" "--timeout=3s" "--retries=1" "--grace=4s" "--exit-on-unhealthy"] "CMD" "/app/check.sh --quiet")',
        '(healthcheck "CMD")',
        '(healthcheck "CMD" "a b")',
        '(healthcheck ["--timeout=3s"] "CMD" "foo")',
        '(healthcheck "CONNECT" "TCP 7000")',
      ],
    ],
    [
      'escape_whitespace (an indented directive applies, as the engine does)',
      '  #escape = `\n\nFROM image\nENV foo `\nENV bar baz',
      ['(from "image")', '(env "foo" "ENV bar baz")'],
    ],
    [
      'empty-line-after-escape (an empty line inside a continuation is skipped, as the engine does)',
      'FROM busybox\n\nRUN foo \\\n\nbar\n',
      ['(from "busybox")', '(run "foo bar")'],
    ],
    [
      'escape-after-comment (a directive after a comment is a comment)',
      '# Comment here. Should not be looking for the following parser directive.\n# Hence the following line will be ignored, and the subsequent backslash\n# continuation will be the default.\n# escape = `\n\nFROM image\nMAINTAINER foo@bar.com\nENV GOPATH \\\n\\go',
      ['(from "image")', '(maintainer "foo@bar.com")', '(env "GOPATH" "\\\\go")'],
    ],
    [
      'escape (a backtick escape directive)',
      '# escape = `\n\nFROM image\nMAINTAINER foo@bar.com\nENV GOPATH `\n\\go',
      ['(from "image")', '(maintainer "foo@bar.com")', '(env "GOPATH" "\\\\go")'],
    ],
    [
      'escapes',
      'FROM ubuntu:14.04\nMAINTAINER Erik \\\\Hollensbe <erik@hollensbe.org>\\"\n\nRUN apt-get \\update && \\\n  apt-get \\"install znc -y\nADD \\conf\\\\" /.znc\n\nRUN foo \\\nbar \\\nbaz\n\nCMD [ "\\/usr\\\\\\"/bin/znc", "-f", "-r" ]\n',
      [
        '(from "ubuntu:14.04")',
        '(maintainer "Erik \\\\\\\\Hollensbe <erik@hollensbe.org>\\\\\\"")',
        '(run "apt-get \\\\update &&   apt-get \\\\\\"install znc -y")',
        '(add "\\\\conf\\\\\\\\\\"" "/.znc")',
        '(run "foo bar baz")',
        '(cmd "/usr\\\\\\"/bin/znc" "-f" "-r")',
      ],
    ],
    [
      'flags',
      'FROM scratch\nCOPY foo /tmp/\nCOPY --user=me foo /tmp/\nCOPY --doit=true foo /tmp/\nCOPY --user=me --doit=true foo /tmp/\nCOPY --doit=true -- foo /tmp/\nCOPY -- foo /tmp/\nCMD --doit [ "a", "b" ]\nCMD --doit=true -- [ "a", "b" ]\nCMD --doit -- [ ]\n',
      [
        '(from "scratch")',
        '(copy "foo" "/tmp/")',
        '(copy ["--user=me"] "foo" "/tmp/")',
        '(copy ["--doit=true"] "foo" "/tmp/")',
        '(copy ["--user=me" "--doit=true"] "foo" "/tmp/")',
        '(copy ["--doit=true"] "foo" "/tmp/")',
        '(copy "foo" "/tmp/")',
        '(cmd ["--doit"] "a" "b")',
        '(cmd ["--doit=true"] "a" "b")',
        '(cmd ["--doit"])',
      ],
    ],
    [
      'onbuild',
      'FROM x\nONBUILD RUN echo hi\nONBUILD COPY --from=build /a /b\nonbuild add [ "x", "/y" ]\n',
      ['(from "x")', '(onbuild (run "echo hi"))', '(onbuild (copy ["--from=build"] "/a" "/b"))', '(onbuild (add "x" "/y"))'],
    ],
    ['an unknown instruction is kept without arguments (the builder refuses it)', 'FROM x\nFROOM y z\n', ['(from "x")', '(froom "")']],
  ];
  it.each(cases)('%s', (_name, text, expected) => {
    expect(dump(text)).toEqual(expected);
  });

  it.each([
    ['ENV without a value', 'FROM x\nENV PATH\n', /ENV must have two arguments/],
    ['a JSON array of other than strings', 'FROM x\nCMD [ "a", 1 ]\n', /arrays must be comprised of strings only/],
    ['name=value with a word without =', 'FROM x\nLABEL a=1 b\n', /can't find = in "b"/],
    ['two escape directives', '# escape=`\n# escape=\\\nFROM x\n', /only one escape parser directive can be used/],
    ['an escape directive other than \\ or `', '# escape=x\nFROM x\n', /invalid escape token 'x'/],
    ['no instruction at all', '# just a comment\n\n', /file with no instructions/],
    ['a line longer than Go reads', `FROM x\nLABEL a=${'b'.repeat(70_000)}\n`, /greater than max allowed size/],
  ])('refuses %s as Docker does', (_name, text, message) => {
    expect(parseWith(text, ENGINE_DIALECT).error?.message).toMatch(message);
  });

  it('gives each instruction its first and last line, continuations and comments included (TestParseIncludesLineNumbers)', () => {
    const text = [
      '# comment',
      '',
      '',
      '',
      'FROM image',
      '',
      '# another',
      '',
      '',
      '',
      'RUN echo one \\',
      '  two',
      '',
      '',
      '',
      '',
      'RUN echo three \\',
      '  # a comment inside',
      '',
      '  four \\',
      '  five',
    ].join('\n');
    expect(parseWith(text, ENGINE_DIALECT).instructions.map((i) => [i.line, i.endLine])).toEqual([
      [5, 5],
      [11, 12],
      [17, 21],
    ]);
  });

  it.each([
    ['foo', ['foo']],
    ['foo bar', ['foo', 'bar']],
    ['foo\\ bar', ['foo\\ bar']],
    ['foo=bar', ['foo=bar']],
    ["foo bar 'abc xyz'", ['foo', 'bar', "'abc xyz'"]],
    ['foo bar "abc xyz"', ['foo', 'bar', '"abc xyz"']],
    ['àöû', ['àöû']],
    ['föo bàr "âbc xÿz"', ['föo', 'bàr', '"âbc xÿz"']],
  ])('splits %j into words as parseWords does (TestParseWords)', (input, words) => {
    expect(parseWords(input, '\\')).toEqual(words);
  });

  it('reads name and value pairs in the old and the new form (line_parsers_test.go)', () => {
    expect(dump('FROM x\nLABEL foo bar\n')[1]).toBe('(label "foo" "bar")');
    expect(dump('FROM x\nLABEL foo=bar thing=star\n')[1]).toBe('(label "foo" "bar" "thing" "star")');
  });
});

describe('parser directives', () => {
  const images = (text: string) =>
    parseDockerfile(text)
      .instructions.filter((i) => i.keyword === 'FROM')
      .map((i) => i.values[0]);
  it.each<[string, string, string[]]>([
    ['escape on the first line', '# escape=`\nFROM a\nRUN x `\nFROM b\n', ['a']],
    ['(a) syntax on line 1, escape on line 2', '# syntax=docker/dockerfile:1\n# escape=`\nFROM a\nRUN x `\nFROM b\n', ['a']],
    ['(b) a byte-order mark before escape', '\uFEFF# escape=`\nFROM a\nRUN x `\nFROM b\n', ['a']],
    ['(c) indentation before escape', '   \t# escape=`\nFROM a\nRUN x `\nFROM b\n', ['a']],
    ['a directive name in any case, spaces around =', '#  ESCAPE  =  `  \nFROM a\nRUN x `\nFROM b\n', ['a']],
    ['a directive after a comment is a comment', '# hello\n# escape=`\nFROM a\nRUN x `\nFROM b\n', ['a', 'b']],
    ['a directive after a blank line is a comment', '\n# escape=`\nFROM a\nRUN x `\nFROM b\n', ['a', 'b']],
    ['a directive after an instruction is a comment', 'FROM a\n# escape=`\nRUN x `\nFROM b\n', ['a', 'b']],
    ['an unknown directive ends the directives', '# foo=bar\n# escape=`\nFROM a\nRUN x `\nFROM b\n', ['a', 'b']],
    ['a byte-order mark only at the very start', '\n\uFEFF# escape=`\nFROM a\nRUN x `\nFROM b\n', ['a', 'b']],
    ['CRLF line ends', '# escape=`\r\nFROM a\r\nRUN x `\r\nFROM b\r\n', ['a']],
  ])('%s', (_name, text, expected) => {
    const reading = parseDockerfile(text);
    expect(reading.error).toBeUndefined();
    expect(reading.disagreement).toBeUndefined();
    expect(images(text)).toEqual(expected);
  });

  it("reads as the engine's classic builder does (test/integration/dockerfileEngine.test.ts builds these cases)", () => {
    expect(ENGINE_DIALECT).toEqual({
      lineEnd: 'legacy',
      continuation: 'current',
      directives: 'legacy',
      json: 'legacy',
      flagEscape: 'legacy',
    });
    expect(DIALECTS).toHaveLength(32);
  });
});

describe('texts Docker versions read differently are reported, not guessed', () => {
  it.each([
    ['a line ending in an escaped escape character', 'FROM a\nRUN echo \\\\\nFROM b\n', 2],
    ['a continuation followed by two carriage returns', 'FROM a\nRUN echo \\\r\r\nFROM b\n', 2],
    ['an escaped escape character followed by two carriage returns (two switches together)', 'FROM a\nRUN echo \\\\\r\r\nFROM b\n', 2],
    ['a JSON array followed by more text', 'FROM a\nCOPY ["x", "/y"] z\n', 2],
    ['an escape directive after a check directive', '# syntax=x\n# check=skip=all\n# escape=`\nFROM a\n', 3],
    ['an escape directive after a no-break space', '#\u00a0escape=`\nFROM a\nRUN x `\nFROM b\n', 1],
    ['a flag escaped with the escape character', '# escape=`\nFROM a\nCOPY --chown="a`"b" x y\n', 3],
  ])('%s', (_name, text, line) => {
    expect(parseDockerfile(text).disagreement?.line).toBe(line);
  });
});

/**
 * The shell lexer's envVarTest (the lines for every platform and for Unix),
 * with its environment: PWD=/home, SHELL=bash, KOREAN=한국어, NULL empty.
 * `undefined`: Docker refuses the word.
 */
describe('variable substitution (envVarTest)', () => {
  const env = new Map([
    ['PWD', '/home'],
    ['SHELL', 'bash'],
    ['KOREAN', '한국어'],
    ['NULL', ''],
  ]);
  const cases: Array<[string, string | undefined]> = [
    ['hello', 'hello'],
    ["he'll'o", 'hello'],
    ["he'llo", undefined],
    ["he\\'llo", "he'llo"],
    ["he\\\\'llo", undefined],
    ['abc\\tdef', 'abctdef'],
    ['"abc\\tdef"', 'abc\\tdef'],
    ['"abc\\\\tdef"', 'abc\\tdef'],
    ["'abc\\tdef'", 'abc\\tdef'],
    ['hello\\', 'hello'],
    ['hello\\\\', 'hello\\'],
    ['"hello', undefined],
    ['"hello\\"', undefined],
    ['"hel\'lo"', "hel'lo"],
    ["'hello", undefined],
    ["'hello\\'", 'hello\\'],
    ["'hello\\there'", 'hello\\there'],
    ["'hello\\\\there'", 'hello\\\\there'],
    ['"\'\'"', "''"],
    ['$.', '$.'],
    ['he$1x', 'hex'],
    ['he$.x', 'he$.x'],
    ['he$pwd.', 'he.'],
    ['he$PWD', 'he/home'],
    ['he\\$PWD', 'he$PWD'],
    ['he\\\\$PWD', 'he\\/home'],
    ['"he\\$PWD"', 'he$PWD'],
    ['"he\\\\$PWD"', 'he\\/home'],
    ['\\${}', '${}'],
    ['\\${}aaa', '${}aaa'],
    ['he\\${}', 'he${}'],
    ['he\\${}xx', 'he${}xx'],
    ['${}', undefined],
    ['${}aaa', undefined],
    ['he${}', undefined],
    ['he${}xx', undefined],
    ['he${hi}', 'he'],
    ['he${hi}xx', 'hexx'],
    ['he${PWD}', 'he/home'],
    ['he${.}', undefined],
    ['he${XXX:-000}xx', 'he000xx'],
    ['he${PWD:-000}xx', 'he/homexx'],
    ['he${XXX:-$PWD}xx', 'he/homexx'],
    ['he${XXX:-${PWD:-yyy}}xx', 'he/homexx'],
    ['he${XXX:-${YYY:-yyy}}xx', 'heyyyxx'],
    ['he${XXX:YYY}', undefined],
    ['he${XXX?}', undefined],
    ['he${XXX:?}', undefined],
    ['he${PWD?}', 'he/home'],
    ['he${PWD:?}', 'he/home'],
    ['he${NULL?}', 'he'],
    ['he${NULL:?}', undefined],
    ['he${XXX:+${PWD}}xx', 'hexx'],
    ['he${PWD:+${XXX}}xx', 'hexx'],
    ['he${PWD:+${SHELL}}xx', 'hebashxx'],
    ['he${XXX:+000}xx', 'hexx'],
    ['he${PWD:+000}xx', 'he000xx'],
    ["'he${XX}'", 'he${XX}'],
    ['"he${PWD}"', 'he/home'],
    ['"he\'$PWD\'"', "he'/home'"],
    ['"$PWD"', '/home'],
    ["'$PWD'", '$PWD'],
    ["'\\$PWD'", '\\$PWD'],
    ['\'"hello"\'', '"hello"'],
    ["'he\\$PWD'", 'he\\$PWD'],
    ['he${PWD', undefined],
    ['he${PWD:=000}xx', undefined],
    ['he${PWD:+${PWD}:}xx', 'he/home:xx'],
    ['he${XXX:-\\$PWD:}xx', 'he$PWD:xx'],
    ['he${XXX:-\\${PWD}z}xx', 'he${PWDz}xx'],
    ['안녕하세요', '안녕하세요'],
    ["안'녕'하세요", '안녕하세요'],
    ["안'녕하세요", undefined],
    ["안녕\\'하세요", "안녕'하세요"],
    ['안녕$1x', '안녕x'],
    ['$KOREAN', '한국어'],
    ['안녕$KOREAN', '안녕한국어'],
    ['${{aaa}', undefined],
    ['${aaa}}', '}'],
    ['${aaa', undefined],
    ['${{aaa:-bbb}', undefined],
    ['${aaa:-bbb}}', 'bbb}'],
    ['${aaa:-bbb', undefined],
    ['${aaa:-bbb}', 'bbb'],
    ['${aaa:-${bbb:-ccc}}', 'ccc'],
    ['${aaa:-bbb ${foo}', undefined],
    ['${aaa:-bbb {foo}', 'bbb {foo'],
    ['${:}', undefined],
    ['${:-bbb}', undefined],
    ['${:+bbb}', undefined],
    // Positional and special parameters are never set.
    ...['1', '2', '9', '999', '001', '@', '*', '#', '?', '-', '$', '!', '0'].flatMap((p): Array<[string, string]> => [
      [`\${${p}}`, ''],
      [`\${${p}:+bbb}`, ''],
      [`\${${p}:-bbb}`, 'bbb'],
    ]),
    ['$999aaa', 'aaa'],
    ['${999:-bbb}aaa', 'bbbaaa'],
    ['$001aaa', 'aaa'],
    ['$@@@', '@@'],
    ['$@aaa', 'aaa'],
    ['${@:-bbb}aaa', 'bbbaaa'],
  ];
  it.each(cases)('%s', (word, expected) => {
    const run = () => processWord(word, env).value;
    if (expected === undefined) expect(run).toThrow();
    else expect(run()).toBe(expected);
  });

  it('says which names it left empty, and refuses pattern forms it does not evaluate', () => {
    expect([...processWord('${BASE}:${TAG:-1}:$X', new Map()).unmatched]).toEqual(['BASE', 'X']);
    expect(() => processWord('${IMAGE%:*}', new Map([['IMAGE', 'a:b']]))).toThrow(/pattern substitution/);
  });
});
