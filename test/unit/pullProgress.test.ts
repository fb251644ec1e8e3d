import { describe, expect, it } from 'vitest';
import { pullProgress, trackPull } from '../../server/runner/engine.js';

/** The progress events of the Docker engine's pull, as it sends them. */
const events = [
  { status: 'Pulling from lab/env', id: 'sha256:abc' },
  { status: 'Pulling fs layer', id: 'l1' },
  { status: 'Already exists', id: 'l0' },
  { status: 'Pulling fs layer', id: 'l2' },
  { status: 'Downloading', id: 'l1', progressDetail: { current: 300, total: 1000 } },
  { status: 'Downloading', id: 'l2', progressDetail: { current: 1000, total: 3000 } },
  { status: 'Verifying Checksum', id: 'l1', progressDetail: {} },
  { status: 'Download complete', id: 'l1', progressDetail: {} },
  { status: 'Extracting', id: 'l1', progressDetail: { current: 500, total: 1000 } },
  { status: 'Pull complete', id: 'l1', progressDetail: {} },
  { status: 'Downloading', id: 'l2', progressDetail: { current: 3000, total: 3000 } },
  { status: 'Extracting', id: 'l2', progressDetail: { current: 3000, total: 3000 } },
  { status: 'Pull complete', id: 'l2', progressDetail: {} },
  { status: 'Digest: sha256:abc' },
];

describe('pull progress', () => {
  it('counts downloading and unpacking each as half of the bytes of the layers to fetch', () => {
    const layers = new Map();
    const seen = events.map((event) => {
      trackPull(layers, event);
      return pullProgress(layers, event.status);
    });
    const fractions = seen.map((p) => p.fraction);
    expect(fractions).toEqual([
      0,
      0,
      0,
      0,
      300 / 2000,
      1300 / 8000,
      2000 / 8000,
      2000 / 8000,
      2500 / 8000,
      3000 / 8000,
      5000 / 8000,
      1,
      1,
      1,
    ]);
    expect(seen.at(-1)).toMatchObject({ current: 4000, total: 4000, fraction: 1 });
    // Bytes downloaded, of the layers known so far ("Already exists" fetches nothing).
    expect(seen[4]).toMatchObject({ current: 300, total: 1000 });
    expect(seen[5]).toMatchObject({ current: 1300, total: 4000 });
  });
});
