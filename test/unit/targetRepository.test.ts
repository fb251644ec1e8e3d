import { describe, expect, it } from 'vitest';
import { targetRepository } from '../../server/builds/targetRepository.js';

describe("a build target's repository", () => {
  it.each([
    ['registry.example.org/built/ada/env:3', 'registry.example.org/built/ada/env'],
    ['127.0.0.1:5000/built/ada/env:12', '127.0.0.1:5000/built/ada/env'],
    ['127.0.0.1:5000/built/ada-634258/env.v2:1', '127.0.0.1:5000/built/ada-634258/env.v2'],
    ['127.0.0.1:5000/built/ada/env', '127.0.0.1:5000/built/ada/env'],
  ])('%s is in %s', (target, repository) => {
    expect(targetRepository(target)).toBe(repository);
  });
});
