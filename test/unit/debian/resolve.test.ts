import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UserError } from '../../../src/errors.js';
import { indexOf, parseRelations, type PackageEntry } from '../../../src/debian/packages.js';
import { resolvePackages } from '../../../src/debian/resolve.js';

function pkg(name: string, fields: { version?: string; depends?: string; provides?: string; essential?: boolean; priority?: string } = {}): PackageEntry {
  return {
    name,
    version: fields.version ?? '1.0',
    architecture: 'amd64',
    filename: `pool/${name}.deb`,
    size: 1,
    sha256: '0'.repeat(64),
    essential: fields.essential ?? false,
    priority: fields.priority ?? 'optional',
    depends: parseRelations(fields.depends),
    provides: parseRelations(fields.provides).flatMap((a) => a.map((r) => (r.constraint ? { name: r.name, version: r.constraint.version } : { name: r.name }))),
  };
}

const index = indexOf([
  pkg('app', { depends: 'libc6 (>= 2.38), mta | postfix, awk, tool' }),
  pkg('libc6', { version: '2.41-12', depends: 'libgcc-s1' }),
  pkg('libgcc-s1', { depends: 'libc6' }), // a cycle
  pkg('postfix'),
  pkg('mawk', { provides: 'awk', priority: 'required' }),
  pkg('gawk', { provides: 'awk' }),
  pkg('tool', { depends: 'old (>= 2) | new, dash, debconf | debconf-2.0' }),
  pkg('old', { version: '1.0' }),
  pkg('new'),
  pkg('dash', { essential: true }),
  pkg('debconf'),
  pkg('impl', { provides: 'virt (= 2.0)' }),
  pkg('wants-virt', { depends: 'virt (>= 2)' }),
  pkg('wants-too-new', { depends: 'libc6 (>= 3)' }),
]);
const where = 'Debian trixie (amd64)';
const names = (packages: readonly PackageEntry[]): string[] => packages.map((p) => p.name);

test('dependency closure: alternatives, virtual packages, versions, Essential, skip, cycles', () => {
  const table: { request: string[]; skip?: string[]; want: string[]; why: string }[] = [
    { request: ['libc6'], want: ['libc6', 'libgcc-s1'], why: 'a cycle ends' },
    { request: ['app'], skip: ['debconf'], want: ['app', 'libc6', 'libgcc-s1', 'mawk', 'new', 'postfix', 'tool'],
      why: 'mta is unknown so postfix; awk by the required provider; old is too old so new; Essential dash and skipped debconf stay out' },
    { request: ['app', 'gawk'], skip: ['debconf-2.0'], want: ['app', 'gawk', 'libc6', 'libgcc-s1', 'new', 'postfix', 'tool'],
      why: 'a provider already chosen satisfies the virtual name' },
    { request: ['wants-virt'], want: ['impl', 'wants-virt'], why: 'a versioned Provides satisfies a versioned dependency' },
    { request: ['awk'], want: ['mawk'], why: 'a virtual name can be requested' },
    { request: ['dash'], want: ['dash'], why: 'an Essential package asked for by name is fetched' },
  ];
  for (const row of table) {
    assert.deepEqual(names(resolvePackages(index, { packages: row.request, skip: row.skip ?? [] }, where)), row.want, row.why);
  }
});

test('what nothing satisfies fails in one line naming it', () => {
  const oneLine = (pattern: RegExp) => (error: unknown): boolean =>
    error instanceof UserError && pattern.test(error.message) && !error.message.includes('\n');
  assert.throws(() => resolvePackages(index, { packages: ['absent'] }, where), oneLine(/^Debian trixie \(amd64\) has no package absent$/));
  assert.throws(() => resolvePackages(index, { packages: ['wants-too-new'] }, where),
    oneLine(/nothing satisfies libc6 \(>= 3\), needed by wants-too-new/));
});
