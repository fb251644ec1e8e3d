import { describe, expect, it } from 'vitest';
import { labelInstruction, labelledDockerfile, layerMarker, LAYER_LABEL } from '../../server/builds/layerLabel.js';

const LABEL = labelInstruction('m0');

describe('the label after each FROM', () => {
  it.each<[string, string, string, number]>([
    ['one stage', 'FROM a\nRUN x\n', `FROM a\n${LABEL}\nRUN x\n`, 1],
    [
      'two stages',
      'FROM a AS build\nRUN x\nFROM b\nCOPY --from=build /x /x\n',
      `FROM a AS build\n${LABEL}\nRUN x\nFROM b\n${LABEL}\nCOPY --from=build /x /x\n`,
      2,
    ],
    ['lower case, no newline at the end', 'from a', `from a\n${LABEL}`, 1],
    ['a FROM continued on the next line', 'FROM a \\\n  AS b\nRUN x\n', `FROM a \\\n  AS b\n${LABEL}\nRUN x\n`, 1],
    [
      'comments and blank lines inside the continuation',
      'FROM a \\\n# note \\\n\n   # indented note\n  AS b\nRUN x\n',
      `FROM a \\\n# note \\\n\n   # indented note\n  AS b\n${LABEL}\nRUN x\n`,
      1,
    ],
    ['spaces after the escape character', 'FROM a \\  \t\n  AS b\n', `FROM a \\  \t\n  AS b\n${LABEL}\n`, 1],
    ['Windows line ends', 'FROM a \\\r\n  AS b\r\nRUN x\r\n', `FROM a \\\r\n  AS b\r\n${LABEL}\nRUN x\r\n`, 1],
    ['the backtick escape', '# escape=`\nFROM a `\n  AS b\nRUN dir c:\\\n', `# escape=\`\nFROM a \`\n  AS b\n${LABEL}\nRUN dir c:\\\n`, 1],
    [
      'the escape directive after a syntax directive',
      '# syntax=docker/dockerfile:1\n# escape=`\nFROM a `\n  AS b\n',
      `# syntax=docker/dockerfile:1\n# escape=\`\nFROM a \`\n  AS b\n${LABEL}\n`,
      1,
    ],
    ['a FROM continued past the end of the file', 'FROM a \\', `FROM a \n${LABEL}`, 1],
    ['a FROM continued past the end into blank lines', 'FROM a \\\n\n# end\n', `FROM a \n\n# end\n${LABEL}\n`, 1],
    ['FROM in a comment', '# FROM x\nFROM a\n', `# FROM x\nFROM a\n${LABEL}\n`, 1],
  ])('%s', (_what, written, built, added) => {
    expect(labelledDockerfile(written, 'm0')).toEqual({ text: built, added });
  });
});

describe("an image's layer marker", () => {
  it('is keyed, and the same for every build of one image', () => {
    const keyed = (secret: string) => `k(${secret})`;
    expect(layerMarker(keyed, 7)).toBe(layerMarker(keyed, 7));
    expect(layerMarker(keyed, 7)).not.toBe(layerMarker(keyed, 8));
    expect(labelInstruction('abc')).toBe(`LABEL ${LAYER_LABEL}=abc`);
  });
});
