import { describe, expect, it } from 'vitest';
import { parseReference, parseRegistryHost, ReferenceError } from '../../server/registry/reference.js';
import { BAD_REFERENCES } from '../support/badInput.js';

const SHA = 'a'.repeat(64);

describe('parseReference: normalisation as Docker does it', () => {
  it.each([
    ['python', 'docker.io/library/python:latest', true],
    ['jupyter/datascience-notebook', 'docker.io/jupyter/datascience-notebook:latest', true],
    ['jupyter/datascience-notebook:2024-05-01', 'docker.io/jupyter/datascience-notebook:2024-05-01', false],
    ['docker.io/python:3.12', 'docker.io/library/python:3.12', false],
    ['index.docker.io/jupyter/base-notebook:x', 'docker.io/jupyter/base-notebook:x', false],
    ['registry-1.docker.io/library/python:3', 'docker.io/library/python:3', false],
    ['registry.example.com/lab/env:1.3', 'registry.example.com/lab/env:1.3', false],
    ['https://registry.example.com/myimage:latest', 'registry.example.com/myimage:latest', true],
    ['HTTPS://Registry.Example.com/myimage:v1', 'registry.example.com/myimage:v1', false],
    ['localhost:5000/team/img', 'localhost:5000/team/img:latest', true],
    ['localhost/img:1', 'localhost/img:1', false],
    ['127.0.0.1:5000/a/b/c/d:tag_1.0-rc', '127.0.0.1:5000/a/b/c/d:tag_1.0-rc', false],
    ['[::1]:5000/img:1', '[::1]:5000/img:1', false],
    [`python@sha256:${SHA}`, `docker.io/library/python@sha256:${SHA}`, false],
    [`python:3.12@sha256:${SHA}`, `docker.io/library/python:3.12@sha256:${SHA}`, false],
    ['a__b/c--d/e.f_g:Tag', 'docker.io/a__b/c--d/e.f_g:Tag', false],
    ['quay.io/jupyter/scipy-notebook:2024-05-27', 'quay.io/jupyter/scipy-notebook:2024-05-27', false],
    ['ghcr.io/org/repo:sha-abc', 'ghcr.io/org/repo:sha-abc', false],
  ])('%s -> %s', (input, normalized, unpinned) => {
    const ref = parseReference(input);
    expect(ref.normalized).toBe(normalized);
    expect(ref.unpinned).toBe(unpinned);
  });

  it('splits registry, repository, tag and digest', () => {
    expect(parseReference(`registry.example.com:5000/lab/env:1.3@sha256:${SHA}`)).toMatchObject({
      registry: 'registry.example.com:5000',
      repository: 'lab/env',
      tag: '1.3',
      digest: `sha256:${SHA}`,
    });
  });
});

describe('parseReference refuses what the grammar does not allow', () => {
  it.each(BAD_REFERENCES)('refuses %j', (input, message) => {
    expect(() => parseReference(input)).toThrow(ReferenceError);
    expect(() => parseReference(input)).toThrow(message);
  });
});

describe('parseRegistryHost', () => {
  it.each([
    ['registry.example.com', 'registry.example.com'],
    ['https://registry.example.com/', 'registry.example.com'],
    ['Registry.Example.com:5000', 'registry.example.com:5000'],
    ['index.docker.io', 'docker.io'],
    ['  localhost:5000  ', 'localhost:5000'],
  ])('%s -> %s', (input, host) => {
    expect(parseRegistryHost(input)).toBe(host);
  });

  it.each([
    ['', /Enter the registry host/],
    ['registry.example.com/team', /without a path/],
    ['registry example.com', /not a valid host name|not a registry host/],
    ['registry.example.com:70000', /port/],
  ])('refuses %j', (input, message) => {
    expect(() => parseRegistryHost(input)).toThrow(message);
  });
});
