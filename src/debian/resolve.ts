/**
 * The closure of a package request over Depends and Pre-Depends, as a pure function of the
 * index. Recommends and Suggests are not followed. Of alternatives ("a | b"), one already chosen
 * wins, else the first that exists; a virtual name is satisfied by a package that Provides it.
 * Version constraints are checked: an alternative whose version does not fit is passed over.
 * Essential packages are not pulled in as dependencies (Debian packages assume them present, and
 * only maintainer scripts use them, which never run here); names in `skip` count as present.
 */
import { failed } from '../errors.js';
import type { Alternatives, PackageEntry, PackageIndex, Requirement } from './packages.js';
import { satisfies } from './version.js';

export interface PackageRequest {
  /** Package or virtual names, fetched with their dependencies. */
  readonly packages: readonly string[];
  /** Names that count as present and are never fetched (tools only maintainer scripts use). */
  readonly skip?: readonly string[];
}

const priorityRank: Record<string, number> = { required: 0, important: 1, standard: 2, optional: 3, extra: 4 };

function fits(entry: PackageEntry, requirement: Requirement): boolean {
  const constraint = requirement.constraint;
  if (entry.name === requirement.name) return constraint === undefined || satisfies(entry.version, constraint.relation, constraint.version);
  const provided = entry.provides.find((p) => p.name === requirement.name);
  if (provided === undefined) return false;
  if (constraint === undefined) return true;
  // a versioned dependency is met by a Provides only when it names a version
  return provided.version !== undefined && satisfies(provided.version, constraint.relation, constraint.version);
}

/** The packages that could satisfy a requirement: the real one first, then providers by priority and name. */
function candidates(index: PackageIndex, requirement: Requirement): PackageEntry[] {
  const real = index.packages.get(requirement.name);
  const providers = [...(index.providers.get(requirement.name) ?? [])].sort((a, b) =>
    (priorityRank[a.priority] ?? 5) - (priorityRank[b.priority] ?? 5) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return [...(real ? [real] : []), ...providers].filter((entry) => fits(entry, requirement));
}

function describe(alternatives: Alternatives): string {
  return alternatives
    .map((r) => (r.constraint ? `${r.name} (${r.constraint.relation} ${r.constraint.version})` : r.name))
    .join(' | ');
}

/** Every package the request needs, sorted by name; fails naming the first dependency nothing satisfies. */
export function resolvePackages(index: PackageIndex, request: PackageRequest, where: string): PackageEntry[] {
  const skip = new Set(request.skip ?? []);
  const chosen = new Map<string, PackageEntry>();
  const queue: { alternatives: Alternatives; neededBy: string | undefined }[] =
    request.packages.map((name) => ({ alternatives: [{ name }], neededBy: undefined }));
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    const { alternatives, neededBy } = next;
    if (alternatives.some((r) => skip.has(r.name))) continue;
    if (alternatives.some((r) => [...chosen.values()].some((entry) => fits(entry, r)))) continue;
    const pick = alternatives.map((r) => candidates(index, r)[0]).find((entry) => entry !== undefined);
    if (pick === undefined) {
      const what = neededBy === undefined ? `no package ${describe(alternatives)}` : `nothing satisfies ${describe(alternatives)}, needed by ${neededBy}`;
      throw failed(`${where} has ${what}`, 'check that --mirror is a Debian mirror that carries this suite and architecture');
    }
    if (pick.essential && neededBy !== undefined) continue;
    chosen.set(pick.name, pick);
    for (const dependency of pick.depends) queue.push({ alternatives: dependency, neededBy: pick.name });
  }
  return [...chosen.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
