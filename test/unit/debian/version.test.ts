import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareVersions, satisfies } from '../../../src/debian/version.js';

test('versions compare as dpkg compares them', () => {
  const ordered: [string, string][] = [
    ['1.0', '1.1'],
    ['1.9', '1.10'],
    ['1.0~rc1', '1.0'],
    ['1.0', '1.0+b1'],
    ['1.0-1', '1.0-2'],
    ['1.0-9', '1.0-10'],
    ['1:9.9', '2:1.0'],
    ['1:10.0.13+ds-0+deb13u1', '1:10.0.13+ds-0+deb13u2'],
    ['6.12.117-1', '6.12.117+deb13-1'],
    ['1.0a', '1.0b'],
    ['1.0', '1.0a'],
  ];
  for (const [older, newer] of ordered) {
    assert.ok(compareVersions(older, newer) < 0, `${older} < ${newer}`);
    assert.ok(compareVersions(newer, older) > 0, `${newer} > ${older}`);
  }
  assert.equal(compareVersions('0:1.0-1', '1.0-1'), 0);
  assert.equal(compareVersions('1.01', '1.1'), 0);
});

test('constraints', () => {
  assert.ok(satisfies('2.41-12', '>=', '2.38'));
  assert.ok(!satisfies('2.36', '>=', '2.38'));
  assert.ok(satisfies('1.0~beta', '<<', '1.0'));
  assert.ok(satisfies('1:1.0', '>>', '9.0'));
  assert.ok(satisfies('1.0-1', '=', '1.0-1'));
  assert.ok(!satisfies('1.0-1', '=', '1.0-2'));
  assert.ok(satisfies('1.0', '<=', '1.0'));
});
