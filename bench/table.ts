/** A benchmark's result row, and the table npm run bench prints. */

export interface BenchRow {
  name: string;
  value: number;
  unit: string;
  /** Measured in the same run on the same machine (or a fixed budget, said in `target`). */
  baseline: number;
  ratio: number;
  target: string;
  ok: boolean;
  note?: string;
}

/** The value below which a share `p` of the values lie (0.5: the median). */
export function percentile(values: number[], p: number): number {
  return [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) * p)] ?? 0;
}

export function formatTable(rows: BenchRow[]): string {
  const lines = rows.map((r) =>
    [
      r.ok ? 'ok  ' : 'MISS',
      r.ratio.toFixed(3).padStart(8),
      r.target.padEnd(10),
      `${r.value.toFixed(1)} ${r.unit} vs ${r.baseline.toFixed(1)}`.padEnd(28),
      r.name + (r.note ? ` (${r.note})` : ''),
    ].join('  '),
  );
  return ['     ratio     target      value vs baseline             benchmark', ...lines].join('\n');
}
