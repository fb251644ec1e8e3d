import { describe, expect, it } from 'vitest';
import { fieldErrors, imageInputSchema } from '../../server/images/schema.js';
import type { System } from '../../server/systems/schema.js';
import { testSystem } from '../support/systems.js';

const system: System = testSystem({ mountPrefixes: ['/home', '/data'] });
const strict: System = { ...system, slug: 'jsc', displayName: 'JSC-Cloud', allowedRegistries: ['registry.example.com/team/*'] };

function errorsOf(raw: Record<string, unknown>, existing?: { registry: string; username: string }) {
  const result = imageInputSchema({ systems: [system, strict], existingCredential: existing }).safeParse(raw);
  return result.success ? {} : fieldErrors(result.error);
}

function parse(raw: Record<string, unknown>, existing?: { registry: string; username: string }) {
  return imageInputSchema({ systems: [system, strict], existingCredential: existing }).parse(raw);
}

describe('the image schema', () => {
  it('normalises and names an image, warning about latest', () => {
    const input = parse({ system: 'default', image: 'jupyter/datascience-notebook' });
    expect(input.reference.normalized).toBe('docker.io/jupyter/datascience-notebook:latest');
    expect(input.name).toBe('datascience-notebook:latest');
    expect(input.warnings[0]).toMatch(/Pin a tag .* or a digest/);
    expect(input.mountPath).toBeNull();
    expect(input.credential).toEqual({ action: 'none' });
  });

  it('accepts a private registry with a full image path on it', () => {
    const input = parse({
      system: 'default',
      image: 'https://registry.example.com/lab/env:1.3',
      registry: 'https://registry.example.com/',
      username: 'ada',
      password: 'tok',
      mountPath: '/data/ada/',
    });
    expect(input.credential).toEqual({ action: 'set', username: 'ada', password: 'tok' });
    expect(input.registry).toBe('registry.example.com');
    expect(input.mountPath).toBe('/data/ada');
    expect(input.warnings).toEqual([]);
  });

  it('accepts Docker Hub credentials without a registry', () => {
    expect(parse({ system: 'default', image: 'ada/private:1', username: 'ada', password: 'tok' }).credential.action).toBe('set');
  });

  it('names both hosts when the image is not on the private registry', () => {
    expect(errorsOf({ system: 'default', image: 'lab/env:1.3', registry: 'registry.example.com' }).image).toMatch(
      /on docker\.io but the private registry is registry\.example\.com/,
    );
    expect(errorsOf({ system: 'default', image: 'other.example.org/lab/env:1', registry: 'registry.example.com' }).image).toMatch(
      /other\.example\.org .*registry\.example\.com/,
    );
  });

  it('refuses credentials without a registry for a registry other than Docker Hub', () => {
    expect(errorsOf({ system: 'default', image: 'registry.example.com/lab/env:1', username: 'u', password: 'p' }).registry).toMatch(
      /need the private registry/,
    );
  });

  it('needs a username with a password, and a password with a new username', () => {
    expect(errorsOf({ system: 'default', image: 'a/b:1', password: 'p' }).username).toMatch(/username/);
    expect(errorsOf({ system: 'default', image: 'a/b:1', username: 'u' }).password).toMatch(/Enter the password/);
  });

  it('keeps the stored password when the field is blank, for the same registry only', () => {
    const existing = { registry: 'registry.example.com', username: 'ada' };
    expect(
      parse({ system: 'default', image: 'registry.example.com/lab/env:2', registry: 'registry.example.com', username: 'ada' }, existing)
        .credential,
    ).toEqual({
      action: 'keep',
      username: 'ada',
    });
    expect(
      errorsOf({ system: 'default', image: 'other.example.org/lab/env:2', registry: 'other.example.org', username: 'ada' }, existing)
        .password,
    ).toMatch(/stored password is for registry\.example\.com/);
    expect(parse({ system: 'default', image: 'a/b:1', removeCredentials: 'on' }, existing).credential).toEqual({ action: 'remove' });
  });

  it("applies the system's registry patterns and mount prefixes", () => {
    expect(errorsOf({ system: 'jsc', image: 'jupyter/base-notebook:1' }).image).toMatch(/JSC-Cloud does not offer images from docker\.io/);
    expect(errorsOf({ system: 'jsc', image: 'registry.example.com/team/env:1' })).toEqual({});
    expect(errorsOf({ system: 'default', image: 'a/b:1', mountPath: '/srv' }).mountPath).toMatch(/under \/home, \/data/);
  });

  it('reports every wrong field at once', () => {
    expect(Object.keys(errorsOf({ system: 'default', image: 'A', registry: 'a b', mountPath: 'x' })).sort()).toEqual([
      'image',
      'mountPath',
      'registry',
    ]);
    // Without a known system its mount rules cannot apply; the system is named instead.
    expect(Object.keys(errorsOf({ system: 'nope', image: 'A', mountPath: 'x' })).sort()).toEqual(['image', 'system']);
  });
});
