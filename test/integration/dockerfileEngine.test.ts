/**
 * The reader agrees with the engine builds run on: each Dockerfile here is
 * built by the Docker engine's classic builder (FROM scratch and ENV steps:
 * no container runs), and the instructions it prints as its steps are the
 * ones `instructions()` gives, line joins, directives and all. A newer
 * engine that reads differently fails this test, rather than a check.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instructions } from '../../server/builds/dockerfile.js';
import { ciDocker } from '../support/docker.js';

let dir: string;

beforeAll(() => {
  ciDocker();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-dockerfile-engine-'));
});

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** The steps the engine's classic builder prints for `text`; the image it built is removed again. */
function engineSteps(text: string): string[] {
  const file = path.join(dir, 'Dockerfile');
  fs.writeFileSync(file, text);
  const output = execFileSync('docker', ['build', '--no-cache', '--network', 'none', '-f', file, dir], {
    env: { ...process.env, DOCKER_BUILDKIT: '0' },
    encoding: 'utf8',
    // The client's notice that the classic builder is deprecated goes to stderr: kept out of the test's output.
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const built = /Successfully built ([0-9a-f]+)/.exec(output)?.[1];
  if (built) execFileSync('docker', ['rmi', built], { stdio: 'ignore' });
  // The classic builder colours some lines with terminal escapes.
  // eslint-disable-next-line no-control-regex
  return [...output.replace(/\u001b\[[0-9;]*m/g, '').matchAll(/^Step \d+\/\d+ : (.*)$/gm)].map((m) => m[1] ?? '');
}

describe("the reader and the engine's builder read the same instructions", { timeout: 120_000 }, () => {
  const steps = 'FROM scratch\nENV x 1 `\nENV y 2\n';
  it.each([
    ['an escape directive', `# escape=\`\n${steps}`],
    ['(a) a syntax directive, then escape', `# syntax=docker/dockerfile:1\n# escape=\`\n${steps}`],
    ['(b) a byte-order mark before escape', `\uFEFF# escape=\`\n${steps}`],
    ['(c) indentation before escape', `  \t# escape=\`\n${steps}`],
    ['a directive in upper case, spaces around =', `#  ESCAPE  =  \`  \n${steps}`],
    ['a directive after a comment', `# hello\n# escape=\`\n${steps}`],
    ['a directive after a blank line', `\n# escape=\`\n${steps}`],
    ['a directive after an unknown one', `# foo=bar\n# escape=\`\n${steps}`],
    ['a directive after check (unknown to this engine)', `# syntax=x\n# check=skip=all\n# escape=\`\n${steps}`],
    ['a no-break space after #', `#\u00a0escape=\`\n${steps}`],
    ['CRLF line ends', `# escape=\`\r\n${steps.replaceAll('\n', '\r\n')}`],
    ['a line ending in an escaped escape character', 'FROM scratch\nENV x a\\\\\nENV y 2\n'],
    ['a continuation before two carriage returns', 'FROM scratch\nENV x 1 \\\r\r\nENV y 2\n'],
    ['empty and comment lines inside a continuation', 'FROM scratch\nENV x 1 \\\n\n  # a comment\n  2 \\\n\t3\nENV y 2\n'],
    ['keywords in any case, tabs between words', 'from\tscratch\nenv x\t1\n  Env y 2   \n'],
    ['an ONBUILD trigger', 'FROM scratch\nONBUILD ADD a.txt /a \\\n  # inside\n  /b/\nENV y 2\n'],
  ])('%s', (_name, text) => {
    expect(instructions(text).map((i) => i.original.trim())).toEqual(engineSteps(text));
  });
});
