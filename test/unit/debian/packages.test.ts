import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePackages, parseRelations, parseStanzas } from '../../../src/debian/packages.js';
import { compareVersions } from '../../../src/debian/version.js';

test('relations: alternatives, constraints, old operators and arch qualifiers', () => {
  assert.deepEqual(parseRelations('libc6 (>= 2.38), debconf (>= 0.5) | debconf-2.0, perl:any, foo (< 2), bar [amd64]'), [
    [{ name: 'libc6', constraint: { relation: '>=', version: '2.38' } }],
    [{ name: 'debconf', constraint: { relation: '>=', version: '0.5' } }, { name: 'debconf-2.0' }],
    [{ name: 'perl' }],
    [{ name: 'foo', constraint: { relation: '<=', version: '2' } }],
    [{ name: 'bar' }],
  ]);
  assert.deepEqual(parseRelations(undefined), []);
});

test('stanzas with continuation lines; the newer of two versions wins', () => {
  const text = [
    'Package: a', 'Version: 1.0', 'Filename: pool/a_1.0.deb', 'Size: 10', `SHA256: ${'1'.repeat(64)}`,
    'Description: first line', ' more text', '',
    'Package: a', 'Version: 1.1', 'Filename: pool/a_1.1.deb', 'Size: 11', `SHA256: ${'2'.repeat(64)}`,
    'Pre-Depends: b', 'Depends: c | d', 'Provides: v (= 3), w', 'Essential: yes', '',
    'Package: broken', 'Version: 1', '',
  ].join('\n');
  assert.equal(parseStanzas(text)[0]?.get('Description'), 'first line\nmore text');
  const index = parsePackages(text, compareVersions);
  assert.equal(index.packages.size, 1, 'a stanza without Filename, Size and SHA256 is no package');
  const a = index.packages.get('a');
  assert.equal(a?.version, '1.1');
  assert.equal(a?.essential, true);
  assert.deepEqual(a?.depends, [[{ name: 'b' }], [{ name: 'c' }, { name: 'd' }]]);
  assert.deepEqual(a?.provides, [{ name: 'v', version: '3' }, { name: 'w' }]);
  assert.deepEqual(index.providers.get('v')?.map((p) => p.name), ['a']);
});
