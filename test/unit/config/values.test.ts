import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAccel, parseCount, parseDurationMs, parseSizeMiB } from '../../../src/config/values.js';
import { UserError } from '../../../src/errors.js';

const memory = { min: 256, max: 24 * 1024, hint: 'h' };

test('sizes: a bare number is MiB, units are binary', () => {
  const cases: [string, number][] = [
    ['4096', 4096],
    ['512M', 512],
    ['512mib', 512],
    ['4G', 4096],
    ['2GiB', 2048],
    ['1.5G', 1536],
    [' 3g ', 3072],
  ];
  for (const [text, mib] of cases) assert.equal(parseSizeMiB('--memory', text, memory), mib, text);
});

test('sizes: malformed, out of range, empty, huge and hostile values are bad input (exit 2)', () => {
  for (const text of ['', 'lots', '-1', '0', '100', '4X', '1e9', '99999999999G', '4G; rm -rf /', '$(id)', '../4G', '25G']) {
    assert.throws(
      () => parseSizeMiB('--memory', text, memory),
      (error: unknown) => error instanceof UserError && error.exitCode === 2 && error.message.startsWith('--memory'),
      text,
    );
  }
});

test('counts accept whole numbers in range only', () => {
  assert.equal(parseCount('--cores', '2', { min: 1, max: 2, hint: '' }), 2);
  for (const text of ['0', '3', '1.5', 'two', '', ' ', '-1', '1000000000']) {
    assert.throws(() => parseCount('--cores', text, { min: 1, max: 2, hint: '' }), UserError, text);
  }
});

test('durations: 90s, 20m, 3h, 1500ms, bare seconds', () => {
  const limits = { min: 1000, max: 86_400_000 };
  assert.equal(parseDurationMs('--boot-timeout', '90s', limits), 90_000);
  assert.equal(parseDurationMs('--boot-timeout', '20m', limits), 1_200_000);
  assert.equal(parseDurationMs('--boot-timeout', '3h', limits), 10_800_000);
  assert.equal(parseDurationMs('--boot-timeout', '1500ms', limits), 1500);
  assert.equal(parseDurationMs('--boot-timeout', '45', limits), 45_000);
  for (const text of ['', 'soon', '10d', '-5s', '0s', '999h', '5 s s']) {
    assert.throws(() => parseDurationMs('--boot-timeout', text, limits), UserError, text);
  }
});

test('accel choices', () => {
  assert.equal(parseAccel('tcg'), 'tcg');
  assert.throws(() => parseAccel('xen'), UserError);
});

test('parsers never crash on random input: they accept or raise a user error', () => {
  const alphabet = '0123456789.kKmMgGtTiIbBsShH -;$()/\\\'"`\u0000\u00e9\ud83d\ude00';
  let seed = 42;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let i = 0; i < 5000; i++) {
    let text = '';
    for (let j = random(12); j > 0; j--) text += alphabet[random(alphabet.length)];
    for (const parse of [
      () => parseSizeMiB('--memory', text, memory),
      () => parseCount('--cores', text, { min: 1, max: 64, hint: '' }),
      () => parseDurationMs('--idle-timeout', text, { min: 1000, max: 86_400_000 }),
      () => parseAccel(text),
    ]) {
      try {
        const value = parse();
        assert.ok(typeof value === 'number' ? Number.isFinite(value) && value > 0 : typeof value === 'string');
      } catch (error) {
        assert.ok(error instanceof UserError && error.exitCode === 2, `${JSON.stringify(text)}: ${String(error)}`);
      }
    }
  }
});
