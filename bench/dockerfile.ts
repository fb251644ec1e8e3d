/**
 * Reading a Dockerfile at submission runs on the web process's event loop:
 * the largest Dockerfile a researcher may send (64 KiB) is read in linear
 * time, whatever it holds. Each crafted input (long runs of spaces, where an
 * anchored regular expression would backtrack; every switch of Docker's
 * versions needed, so every combination is read) is measured against an
 * ordinary Dockerfile of the same size, read in the same run.
 */
import { dockerfileProblems } from '../server/builds/dockerfile.js';
import { percentile, type BenchRow } from './table.js';

const MAX = 64 * 1024;
const rules = { allowedRegistries: ['registry.example.org/*'], systemName: 'Bench', maxBytes: MAX };
const fill = (head: string, unit: string, tail = '') =>
  head + unit.repeat(Math.floor((MAX - head.length - tail.length) / unit.length)) + tail;

function median(text: string): number {
  const times: number[] = [];
  for (let i = 0; i < 15; i++) {
    const start = process.hrtime.bigint();
    dockerfileProblems(text, rules);
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return percentile(times, 0.5);
}

export function benchDockerfile(): Promise<BenchRow[]> {
  const base = 'FROM registry.example.org/base:1\n';
  const ordinary = fill(
    base,
    'RUN apt-get update && apt-get install -y --no-install-recommends git \\\n    && rm -rf /var/lib/apt/lists/*\n',
  );
  const crafted: Array<[string, string]> = [
    ['a directive line of spaces', fill('# syntax=', ' ', 'x\n') + base],
    ['an instruction with a long run of spaces', fill(base + 'RUN', ' ', 'x\n')],
    ['ADD of a source of @ signs', fill(base + 'ADD ', '@', ' /x\n')],
    [
      'every version switch needed',
      fill('# check=skip=all\n' + base, 'COPY ["a", "/b"]\nLABEL a="b\r\rc" b="]x" c="--`"\n# ends in two escapes \\\\\n'),
    ],
    ['ONBUILD triggers, each read again', fill(base, 'ONBUILD COPY --from=registry.example.org/t:1 /a /a\n')],
  ];
  const baseline = median(ordinary);
  return Promise.resolve(
    crafted.map(([name, text]) => {
      const value = median(text);
      const ratio = value / baseline;
      return { name: `reading a 64 KiB Dockerfile: ${name}`, value, unit: 'ms', baseline, ratio, target: '≤ 20x', ok: ratio <= 20 };
    }),
  );
}
