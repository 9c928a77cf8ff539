/** Debian version numbers: [epoch:]upstream[-revision], compared the way dpkg compares them. */

export type Relation = '<<' | '<=' | '=' | '>=' | '>>';

interface Parts {
  readonly epoch: number;
  readonly upstream: string;
  readonly revision: string;
}

function parts(version: string): Parts {
  const colon = version.indexOf(':');
  const epoch = colon > 0 ? Number(version.slice(0, colon)) : 0;
  const rest = colon > 0 ? version.slice(colon + 1) : version;
  const dash = rest.lastIndexOf('-');
  return dash < 0
    ? { epoch, upstream: rest, revision: '' }
    : { epoch, upstream: rest.slice(0, dash), revision: rest.slice(dash + 1) };
}

/** A character's weight in the non-digit runs: "~" before everything, letters before other symbols. */
function order(c: string | undefined): number {
  if (c === undefined || /\d/.test(c)) return 0;
  if (c === '~') return -1;
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0);
  return c.charCodeAt(0) + 256;
}

function compareFragment(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let first = 0;
    while ((i < a.length && !/\d/.test(a[i] ?? '')) || (j < b.length && !/\d/.test(b[j] ?? ''))) {
      const diff = order(a[i]) - order(b[j]);
      if (diff !== 0) return Math.sign(diff);
      i++;
      j++;
    }
    while (a[i] === '0') i++;
    while (b[j] === '0') j++;
    while (/\d/.test(a[i] ?? '') && /\d/.test(b[j] ?? '')) {
      if (first === 0) first = (a.charCodeAt(i) - b.charCodeAt(j));
      i++;
      j++;
    }
    if (/\d/.test(a[i] ?? '')) return 1;
    if (/\d/.test(b[j] ?? '')) return -1;
    if (first !== 0) return Math.sign(first);
  }
  return 0;
}

/** Negative, zero or positive as a is older than, the same as or newer than b. */
export function compareVersions(a: string, b: string): number {
  const x = parts(a);
  const y = parts(b);
  if (x.epoch !== y.epoch) return Math.sign(x.epoch - y.epoch);
  return compareFragment(x.upstream, y.upstream) || compareFragment(x.revision, y.revision);
}

export function satisfies(version: string, relation: Relation, wanted: string): boolean {
  const c = compareVersions(version, wanted);
  switch (relation) {
    case '<<': return c < 0;
    case '<=': return c <= 0;
    case '=': return c === 0;
    case '>=': return c >= 0;
    case '>>': return c > 0;
  }
}
