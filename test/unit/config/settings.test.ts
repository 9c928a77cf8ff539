import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyFlags, defaultSettings, parseSettings } from '../../../src/config/settings.js';
import { UserError } from '../../../src/errors.js';

const host = { cores: 4, memoryMiB: 8192 };

test('defaults fit the host', () => {
  const s = defaultSettings(host);
  assert.equal(s.cores, 4);
  assert.equal(s.memoryMiB, 2048);
  assert.equal(s.accel, 'auto');
});

test('flags override remembered settings; absent flags keep them', () => {
  const base = { ...defaultSettings(host), cores: 1, sshPort: 40000 };
  const next = applyFlags(base, { memory: '1G', accel: 'tcg' }, host);
  assert.deepEqual(next, { ...base, memoryMiB: 1024, accel: 'tcg' });
});

test('auto puts cores and memory back to the host\'s defaults, whatever was remembered', () => {
  const base = { ...defaultSettings(host), cores: 1, memoryMiB: 512 };
  const next = applyFlags(base, { cores: 'auto', memory: 'auto' }, host);
  assert.equal(next.cores, 4);
  assert.equal(next.memoryMiB, 2048);
  assert.equal(applyFlags(base, { cores: 'auto' }, { cores: 16, memoryMiB: 2048 }).cores, 8);
});

test('more cores or memory than the host has is refused', () => {
  assert.throws(() => applyFlags(defaultSettings(host), { cores: '5' }, host), /--cores must be between 1 and 4/);
  assert.throws(() => applyFlags(defaultSettings(host), { memory: '9G' }, host), /--memory must be between/);
});

test('a corrupt or truncated config.json names the file and how to recover', () => {
  for (const text of ['{"version":1,"cores":', '[]', '{"version":9}', '{"version":1,"cores":0,"memoryMiB":1,"accel":"x","bootTimeoutMs":1}']) {
    assert.throws(
      () => parseSettings(text, '/state/default/config.json'),
      (error: unknown) => error instanceof UserError && error.exitCode === 1 && /config\.json/.test(error.message) && /rm /.test(error.hint ?? ''),
    );
  }
  const good = JSON.stringify(defaultSettings(host));
  assert.deepEqual(parseSettings(good, 'x'), defaultSettings(host));
});

test('--disk-size takes a size (default 40G) and --ephemeral a switch; both are remembered', () => {
  assert.equal(defaultSettings(host).diskSizeMiB, 40 * 1024);
  assert.equal(defaultSettings(host).ephemeral, false);
  const next = applyFlags(defaultSettings(host), { diskSize: '4G', ephemeral: true }, host);
  assert.equal(next.diskSizeMiB, 4096);
  assert.equal(next.ephemeral, true);
  assert.equal(applyFlags(next, { ephemeral: false }, host).ephemeral, false);
  assert.equal(applyFlags(next, {}, host).ephemeral, true, 'absent: remembered');
  for (const bad of ['big', '512M', '-4G']) {
    assert.throws(
      () => applyFlags(defaultSettings(host), { diskSize: bad }, host),
      (error: unknown) => error instanceof UserError && error.exitCode === 2 && /--disk-size/.test(error.message),
      bad,
    );
  }
});

test('a config.json from before the disk gets the disk defaults', () => {
  const { diskSizeMiB: _size, ephemeral: _ephemeral, ...old } = defaultSettings(host);
  const parsed = parseSettings(JSON.stringify(old), 'x');
  assert.equal(parsed.diskSizeMiB, 40 * 1024);
  assert.equal(parsed.ephemeral, false);
});
