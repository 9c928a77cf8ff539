/**
 * A Packages index: the deb822 stanzas of one suite's component for one architecture, and the
 * fields of each package this module needs (where its .deb is, its hash, what it depends on).
 */
import type { Relation } from './version.js';

/** One name a dependency accepts, with an optional version constraint. */
export interface Requirement {
  readonly name: string;
  readonly constraint?: { readonly relation: Relation; readonly version: string };
}

/** A comma-separated item of Depends: any one of its alternatives ("a | b") satisfies it. */
export type Alternatives = readonly Requirement[];

export interface PackageEntry {
  readonly name: string;
  readonly version: string;
  readonly architecture: string;
  readonly filename: string;
  readonly size: number;
  readonly sha256: string;
  readonly essential: boolean;
  readonly priority: string;
  readonly depends: readonly Alternatives[];
  /** Virtual names this package provides, each with the version it provides, if any. */
  readonly provides: readonly { readonly name: string; readonly version?: string }[];
}

export interface PackageIndex {
  readonly packages: ReadonlyMap<string, PackageEntry>;
  /** Virtual name → the packages that provide it. */
  readonly providers: ReadonlyMap<string, readonly PackageEntry[]>;
}

/** deb822 stanzas: "Field: value" lines, continuation lines starting with a space, blank lines between; only `fields` if given. */
export function parseStanzas(text: string, fields?: ReadonlySet<string>): Map<string, string>[] {
  return [...stanzas(text, fields)];
}

function* stanzas(text: string, fields?: ReadonlySet<string>): Generator<Map<string, string>> {
  let current = new Map<string, string>();
  let field: string | undefined;
  // line by line without splitting: a whole index is over a million lines
  for (let start = 0; start <= text.length;) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end);
    start = end + 1;
    if (line.trim() === '') {
      if (current.size > 0) yield current;
      current = new Map();
      field = undefined;
    } else if (line.startsWith(' ') || line.startsWith('\t')) {
      if (field !== undefined) current.set(field, `${current.get(field) ?? ''}\n${line.slice(1)}`);
    } else if (!line.startsWith('#')) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      field = line.slice(0, colon);
      if (fields !== undefined && !fields.has(field)) {
        field = undefined;
        continue;
      }
      current.set(field, line.slice(colon + 1).trim());
    }
  }
  if (current.size > 0) yield current;
}

const requirementPattern = /^([a-z0-9][a-z0-9+.-]*)(?::[a-z0-9-]+)?\s*(?:\(\s*(<<|<=|=|>=|>>|<|>)\s*([^\s)]+)\s*\))?/;

/** "libc6 (>= 2.38), debconf (>= 0.5) | debconf-2.0" → [[libc6 ≥ 2.38], [debconf ≥ 0.5, debconf-2.0]]. */
export function parseRelations(field: string | undefined): Alternatives[] {
  if (field === undefined || field.trim() === '') return [];
  return field.split(',').map((item) =>
    item.split('|').flatMap((alternative): Requirement[] => {
      // architecture lists do not occur in binary packages' fields; drop them if they do
      const text = alternative.replace(/\[[^\]]*\]/g, '').trim();
      const match = requirementPattern.exec(text);
      if (match === null) return [];
      const [, name = '', relation, version] = match;
      if (relation === undefined || version === undefined) return [{ name }];
      // "<" and ">" are old spellings of "<=" and ">="
      const normalized = (relation === '<' ? '<=' : relation === '>' ? '>=' : relation) as Relation;
      return [{ name, constraint: { relation: normalized, version } }];
    }),
  ).filter((alternatives) => alternatives.length > 0);
}

function entryOf(stanza: ReadonlyMap<string, string>): PackageEntry | undefined {
  const name = stanza.get('Package');
  const version = stanza.get('Version');
  const filename = stanza.get('Filename');
  const sha256 = stanza.get('SHA256');
  const size = Number(stanza.get('Size'));
  if (!name || !version || !filename || !sha256 || !/^[0-9a-f]{64}$/.test(sha256) || !Number.isSafeInteger(size)) return undefined;
  return {
    name,
    version,
    architecture: stanza.get('Architecture') ?? '',
    filename,
    size,
    sha256,
    essential: stanza.get('Essential') === 'yes',
    priority: stanza.get('Priority') ?? 'optional',
    depends: [...parseRelations(stanza.get('Pre-Depends')), ...parseRelations(stanza.get('Depends'))],
    provides: parseRelations(stanza.get('Provides')).flatMap((alternatives) =>
      alternatives.map((r) => (r.constraint?.relation === '=' ? { name: r.name, version: r.constraint.version } : { name: r.name }))),
  };
}

/** The fields entryOf reads: a full index is some 60 MB of text, mostly descriptions. */
const indexFields = new Set(['Package', 'Version', 'Architecture', 'Filename', 'Size', 'SHA256', 'Essential', 'Priority', 'Pre-Depends', 'Depends', 'Provides']);

/** The index of a Packages file; of two stanzas for one name, the newer version wins. */
export function parsePackages(text: string, compare: (a: string, b: string) => number): PackageIndex {
  const packages = new Map<string, PackageEntry>();
  for (const stanza of stanzas(text, indexFields)) {
    const entry = entryOf(stanza);
    if (entry === undefined) continue;
    const known = packages.get(entry.name);
    if (known === undefined || compare(entry.version, known.version) > 0) packages.set(entry.name, entry);
  }
  return indexOf([...packages.values()]);
}

export function indexOf(entries: readonly PackageEntry[]): PackageIndex {
  const packages = new Map(entries.map((entry) => [entry.name, entry]));
  const providers = new Map<string, PackageEntry[]>();
  for (const entry of packages.values()) {
    for (const provided of entry.provides) {
      const list = providers.get(provided.name) ?? [];
      list.push(entry);
      providers.set(provided.name, list);
    }
  }
  return { packages, providers };
}
