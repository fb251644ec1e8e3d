/**
 * Python package names and versions as pip prints them: a version through
 * `packaging.version.Version` and back to text (PEP 440's normal form), a
 * name compared in PEP 503's normal form. Pure.
 */

/** packaging's VERSION_PATTERN (packaging/version.py), anchored, case-insensitive. */
const VERSION =
  /^\s*v?(?:(?:(\d+)!)?(\d+(?:\.\d+)*)([-_.]?(alpha|a|beta|b|preview|pre|c|rc)[-_.]?(\d+)?)?((?:-(\d+))|(?:[-_.]?(post|rev|r)[-_.]?(\d+)?))?([-_.]?(dev)[-_.]?(\d+)?)?)(?:\+([a-z0-9]+(?:[-_.][a-z0-9]+)*))?\s*$/i;

const PRE_LABELS: Record<string, string> = { alpha: 'a', a: 'a', beta: 'b', b: 'b', c: 'rc', pre: 'rc', preview: 'rc', rc: 'rc' };

/** A run of digits as Python's `str(int(...))` writes it. */
function int(digits: string): string {
  return BigInt(digits).toString();
}

/**
 * `str(Version(text))`: "1.0-beta.1" -> "1.0b1", "2!01.2-r3" -> "2!1.2.post3".
 * Text that is no PEP 440 version comes back as it is (pip shows such a
 * legacy version unchanged).
 */
export function normalizeVersion(text: string): string {
  const m = VERSION.exec(text);
  if (!m) return text;
  const [, epoch, release = '', pre, preLabel, preNumber, post, postNumber1, , postNumber2, dev, , devNumber, local] = m;
  let out = '';
  if (epoch !== undefined && int(epoch) !== '0') out += `${int(epoch)}!`;
  out += release.split('.').map(int).join('.');
  if (pre !== undefined) out += `${PRE_LABELS[(preLabel ?? '').toLowerCase()] ?? ''}${int(preNumber ?? '0')}`;
  if (post !== undefined) out += `.post${int(postNumber1 ?? postNumber2 ?? '0')}`;
  if (dev !== undefined) out += `.dev${int(devNumber ?? '0')}`;
  if (local !== undefined)
    out += `+${local
      .toLowerCase()
      .split(/[-_.]/)
      .map((part) => (/^\d+$/.test(part) ? int(part) : part))
      .join('.')}`;
  return out;
}

/** PEP 503: `Foo_Bar.baz` -> `foo-bar-baz`; two names are the same package when these are equal. */
export function canonicalName(name: string): string {
  return name.replace(/[-_.]+/g, '-').toLowerCase();
}
