/** 850 ms, 12.3 s, 4 min 5 s: how long a job took; blank when it has not started. */
export function formatDuration(ms: number | null): string {
  if (ms === null) return '';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** 64 KiB, 10.0 MiB: limits as they are configured (binary units, `…_KB` and `…_MB` variables). */
export function formatKiB(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : `${Math.ceil(bytes / 1024)} KiB`;
}

/** 512 MiB, 1.5 MiB, 64 KiB: a limit configured in `…_MB` (whole MiB without a decimal), or a size held against it. */
export function formatMiB(bytes: number): string {
  return bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0 ? `${bytes / 1024 / 1024} MiB` : formatKiB(bytes);
}

/** 1.5 GB, 300 MB, 12 kB: sizes as people read them (decimal units, as registries and Docker show them). */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(value >= 100 ? 0 : 1)} ${units[unit]}`;
}
