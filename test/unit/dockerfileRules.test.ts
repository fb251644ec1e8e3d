/**
 * What a Dockerfile may make the engine fetch: images only from the system's
 * registries (FROM, COPY --from, RUN --mount=from, and what ONBUILD triggers
 * run), and nothing by ADD from the network. The four ways the old reader
 * was bypassed are cases here.
 */
import { describe, expect, it } from 'vitest';
import {
  dockerfileImages,
  dockerfileProblems,
  instructions,
  isRemoteSource,
  pinBaseImages,
  triggerFindings,
} from '../../server/builds/dockerfile.js';

const rules = { allowedRegistries: ['registry.example.org/*'], systemName: 'Default', maxBytes: 64 * 1024 };
const BASE = 'FROM registry.example.org/base:1';
const problems = (text: string) => dockerfileProblems(text, rules);

describe('ADD of anything the engine would fetch is refused, naming the line', () => {
  it.each([
    ['http', `${BASE}\nADD http://127.0.0.1:8080/x /x\n`],
    ['upper-case scheme', `${BASE}\nADD HTTP://127.0.0.1:8080/x /x\n`],
    ['https', `${BASE}\nADD https://example.org/x.tar.gz /x\n`],
    ['mixed case https', `${BASE}\nADD HtTpS://example.org/x /x\n`],
    ['git scheme', `${BASE}\nADD git://example.org/repo.git /src\n`],
    ['ssh scheme', `${BASE}\nADD ssh://git@example.org/repo.git /src\n`],
    ['scp-like git source', `${BASE}\nADD git@example.org:lab/repo.git /src\n`],
    ['github.com shorthand', `${BASE}\nADD github.com/lab/repo /src\n`],
    ['an unknown scheme', `${BASE}\nADD ftp://example.org/x /x\n`],
    ['JSON form', `${BASE}\nADD ["http://127.0.0.1:8080/x", "/x"]\n`],
    ['JSON form, second source', `${BASE}\nADD ["local.txt", "http://127.0.0.1:8080/x", "/x/"]\n`],
    ['with --checksum', `${BASE}\nADD --checksum=sha256:${'0'.repeat(64)} http://127.0.0.1:8080/x /x\n`],
    ['with --chown', `${BASE}\nADD --chown=1000:100 http://127.0.0.1:8080/x /x\n`],
    ['lower-case keyword', `${BASE}\nadd http://127.0.0.1:8080/x /x\n`],
    ['continued over lines', `${BASE}\nADD \\\n  http://127.0.0.1:8080/x \\\n  /x\n`],
    ['a variable (could be a URL)', `${BASE}\nENV U=http://127.0.0.1:8080/x\nADD $U /x\n`],
    ['ONBUILD ADD', `${BASE}\nONBUILD ADD http://127.0.0.1:8080/x /x\n`],
    ['ONBUILD add in JSON form', `${BASE}\nONBUILD add ["http://127.0.0.1:8080/x", "/x"]\n`],
  ])('%s', (_name, text) => {
    const line = text.split('\n').findIndex((l) => /add /i.test(l)) + 1;
    expect(problems(text).find((p) => /ADD/.test(p))).toMatch(new RegExp(`^Line ${line}: ADD `));
  });

  it('allows ADD of files from the build context and COPY', () => {
    expect(problems(`${BASE}\nADD env.tar.gz /opt/\nADD ["a b.txt", "/x/"]\nCOPY http.txt /x\n`)).toEqual([]);
  });

  it.each([
    ['http://x/y', true],
    ['HTTPS://x', true],
    ['git@github.com:lab/repo.git', true],
    ['user@host:path', true],
    ['github.com/lab/repo', true],
    ['s3://bucket/key', true],
    ['local/dir', false],
    ['./http:/x', false],
    ['file.tar.gz', false],
    ['a@b', false],
  ])('%s is fetched by Docker: %s', (source, remote) => {
    expect(isRemoteSource(source)).toBe(remote);
  });
});

describe('images outside the allowed registries are refused, however the Dockerfile is written', () => {
  const evil = '127.0.0.1:5999/evil:1';
  it.each([
    ['a plain FROM', `FROM ${evil}\n`, 1],
    ['(a) # syntax on line 1, # escape=` on line 2', `# syntax=docker/dockerfile:1\n# escape=\`\n${BASE}\nRUN echo \\\nFROM ${evil}\n`, 5],
    ['(b) a byte-order mark before # escape', `\uFEFF# escape=\`\n${BASE}\nRUN echo \\\nFROM ${evil}\n`, 4],
    ['(c) indentation before # escape', `   # escape=\`\n${BASE}\nRUN echo \\\nCOPY --from=${evil} /a /a\n`, 4],
    ['(d) ONBUILD COPY --from', `${BASE}\nONBUILD COPY --from=${evil} /a /a\n`, 2],
    ['COPY --from', `${BASE}\nCOPY --from=${evil} /a /a\n`, 2],
    ['COPY --from in lower case, JSON form', `${BASE}\ncopy --from=${evil} ["/a", "/a"]\n`, 2],
    ['RUN --mount=from (BuildKit)', `${BASE}\nRUN --mount=type=bind,from=${evil},target=/m ls /m\n`, 2],
    ['FROM with --platform', `FROM --platform=linux/amd64 ${evil} AS x\n`, 1],
    ['FROM through a build argument', `ARG R=127.0.0.1:5999\nARG IMAGE=$R/evil:1\nFROM \${IMAGE}\n`, 3],
    ['FROM through a default', `FROM \${NOPE:-${evil}}\n`, 1],
    ['a stage name later in the file is an image where it is used', `${BASE} AS one\nCOPY --from=two /a /a\nFROM ${BASE} AS two\n`, 2],
    ['a stage ONBUILD that a later FROM of the stage runs', `${BASE} AS one\nONBUILD COPY --from=evilstage /a /a\nFROM one\n`, 2],
  ])('%s', (_name, text, line) => {
    const found = problems(text);
    expect(found.some((p) => p.startsWith(`Line ${line}: `) && / is not among the registries Default allows/.test(p))).toBe(true);
  });

  it('reads stages, stage indexes, scratch and build arguments as Docker does', () => {
    const text = [
      'ARG BASE=registry.example.org/base',
      'ARG TAG=1',
      'FROM ${BASE}:${TAG} AS build',
      'ONBUILD COPY --from=build /x /x',
      'FROM scratch AS empty',
      'FROM Build',
      'COPY --from=0 /a /a',
      'COPY --from=EMPTY /b /b',
      'RUN --mount=type=cache,from=build,target=/c true',
      'COPY --from=registry.example.org/tools:2 /t /t',
    ].join('\n');
    expect(problems(text)).toEqual([]);
    expect(dockerfileImages(text).images).toEqual([
      { image: 'registry.example.org/base:1', line: 3, kind: 'from', stages: [] },
      { image: 'registry.example.org/tools:2', line: 10, kind: 'copy' },
    ]);
  });

  it.each([
    ['a --from with a variable', `${BASE}\nCOPY --from=$IMG /a /a\n`, /a variable cannot be checked/],
    ['a stage index that is not earlier', `${BASE}\nCOPY --from=1 /a /a\n`, /no earlier stage 1/],
    ['a heredoc (read as instructions by some versions)', `${BASE}\nRUN <<EOF\nFROM 127.0.0.1:5999/x\nEOF\n`, /heredocs are not supported/],
    ['a pattern substitution in FROM', `ARG I=registry.example.org/base:1\nFROM \${I%:*}\n`, /cannot be read/],
    ['an instruction before the first FROM', `RUN true\n${BASE}\n`, /RUN comes before the first FROM/],
    ['a flag of FROM other than --platform', `FROM --foo=1 registry.example.org/base:1\n`, /FROM takes no flag but --platform/],
    ['ONBUILD FROM', `${BASE}\nONBUILD FROM x\n`, /FROM cannot be an ONBUILD trigger/],
    [
      'a line Docker versions read differently',
      `${BASE}\nRUN echo \\\\\nFROM 127.0.0.1:5999/x\n`,
      /Docker versions read this instruction differently/,
    ],
    ['a line Docker cannot read', `${BASE}\nENV PATH\n`, /Line 2: Docker cannot read this line: ENV must have two arguments/],
    ['an instruction Docker does not know', `${BASE}\n\uFEFF# escape=\`\n`, /Line 2: \uFEFF# is not an instruction Docker knows/],
  ])('refuses %s', (_name, text, message) => {
    expect(problems(text).join('\n')).toMatch(message);
  });

  it('lets a stored ONBUILD name a stage of the build that will run it, and checks it there', () => {
    expect(problems(`${BASE}\nONBUILD COPY --from=builder /app /app\n`)).toEqual([]);
    expect(triggerFindings(['COPY --from=builder /app /app'], ['builder']).problems).toEqual([]);
    expect(triggerFindings(['COPY --from=builder /app /app'], []).images).toEqual([
      { image: 'builder', line: 1, kind: 'copy', trigger: 'COPY --from=builder /app /app' },
    ]);
  });
});

describe("a base image's build triggers", () => {
  it.each([
    ['ADD http://127.0.0.1:5999/x /x', /ADD would make the engine fetch http:\/\/127\.0\.0\.1:5999\/x/],
    ['ADD ["HTTP://127.0.0.1:5999/x", "/x"]', /ADD would make the engine fetch/],
    ['ADD $URL /x', /a source with a variable cannot be checked/],
    ['RUN <<EOF', /heredocs are not supported/],
    ['ONBUILD RUN x', /ONBUILD cannot be a trigger/],
    ['RUN a\nRUN b', /must be a single instruction/],
  ])('%s is refused', (trigger, message) => {
    const found = triggerFindings([trigger], []);
    expect(found.problems).toHaveLength(1);
    expect(found.problems[0]?.trigger).toBe(trigger);
    expect(found.problems[0]?.message).toMatch(message);
  });

  it('names the images a trigger copies from, for the same registry rules', () => {
    const found = triggerFindings(['RUN make', 'COPY --from=127.0.0.1:5999/evil /a /a', 'COPY --from=0 /b /b'], ['build']);
    expect(found.problems).toEqual([]);
    expect(found.images).toEqual([
      { image: '127.0.0.1:5999/evil', line: 1, kind: 'copy', trigger: 'COPY --from=127.0.0.1:5999/evil /a /a' },
    ]);
  });
});

describe('the engine builds from the digests that were checked', () => {
  const digest = `sha256:${'a'.repeat(64)}`;
  it('names each pinned base image by its digest, keeping flags, stage names and every other line', () => {
    const text = [
      'ARG TAG=1',
      'FROM --platform=linux/amd64 registry.example.org/base:${TAG} \\',
      '  # a comment inside',
      '  AS build',
      'RUN make',
      'FROM build',
      'FROM registry.example.org/other@sha256:' + 'b'.repeat(64),
      'COPY --from=build /a /a',
    ].join('\n');
    const pinned = pinBaseImages(text, [
      { line: 2, image: 'registry.example.org/base:1', digest },
      { line: 7, image: 'registry.example.org/other@sha256:' + 'b'.repeat(64), digest: 'sha256:' + 'b'.repeat(64) },
    ]);
    expect(pinned.split('\n')).toEqual([
      'ARG TAG=1',
      `FROM --platform=linux/amd64 registry.example.org/base@${digest} AS build`,
      '',
      '',
      'RUN make',
      'FROM build',
      'FROM registry.example.org/other@sha256:' + 'b'.repeat(64),
      'COPY --from=build /a /a',
    ]);
    expect(instructions(pinned).map((i) => [i.keyword, i.line])).toEqual(instructions(text).map((i) => [i.keyword, i.line]));
  });

  it('names a Docker Hub image in full', () => {
    expect(pinBaseImages('FROM python:3.12\n', [{ line: 1, image: 'python:3.12', digest }])).toBe(
      `FROM docker.io/library/python@${digest}\n`,
    );
  });
});

describe('the largest Dockerfiles a researcher may send are read whatever they hold', () => {
  // Inputs on which anchored regular expressions backtrack quadratically (npm run bench dockerfile measures them).
  it.each([
    ['a directive line of spaces', `# syntax=${' '.repeat(60_000)}x\n${BASE}\n`, []],
    ['an instruction with a long run of spaces', `${BASE}\nRUN${' '.repeat(60_000)}true\n`, []],
    ['ADD of a source of @ signs', `${BASE}\nADD ${'@'.repeat(60_000)} /x\n`, []],
    ['a line of carriage returns', `${BASE}\nLABEL a="${'\r'.repeat(60_000)}"\n`, []],
    ['ADD of a git source after many @ signs', `${BASE}\nADD u${'@'.repeat(30_000)}h:r /x\n`, [/^Line 2: ADD would make the engine fetch/]],
  ])('%s', (_name, text, expected) => {
    const found = problems(text);
    expect(found).toHaveLength(expected.length);
    expected.forEach((message, i) => expect(found[i]).toMatch(message));
  });
});
