import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../../../src/errors.js';
import { saveSettings } from '../../../src/instance/identity.js';
import { instancePaths } from '../../../src/instance/paths.js';
import { settingsWithFlags } from '../../../src/instance/settings-flags.js';
import { defaultSettings } from '../../../src/config/settings.js';

async function instance(t: { after: (fn: () => Promise<void>) => void }) {
  const dir = await mkdtemp(join(tmpdir(), 'lb-flags-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const paths = instancePaths('flags', { state: dir, cache: join(dir, 'cache'), runtime: join(dir, 'run') });
  await mkdir(paths.stateDir, { recursive: true });
  return paths;
}

test('flags are laid over the remembered settings, which are returned unchanged beside them; nothing is written', async (t) => {
  const paths = await instance(t);
  const remembered = { ...defaultSettings(), cores: 1, sshPort: 40000 };
  await saveSettings(paths, remembered);
  const { remembered: before, settings } = await settingsWithFlags(paths, { memory: '512M', systems: 'x86_64-linux' });
  assert.deepEqual(before, remembered);
  assert.deepEqual(settings, { ...remembered, memoryMiB: 512, systems: ['x86_64-linux'] });
  assert.deepEqual((await settingsWithFlags(paths, {})).settings, remembered);
});

test('a --disk-size smaller than the disk and a --kernel that is not a file are bad input, before anything is written', async (t) => {
  const paths = await instance(t);
  await writeFile(paths.disk, '');
  await truncate(paths.disk, 4 * 1024 ** 3);
  const badInput = (pattern: RegExp) => (error: unknown) => error instanceof UserError && error.exitCode === 2 && pattern.test(error.message);
  await assert.rejects(settingsWithFlags(paths, { diskSize: '2G' }), badInput(/--disk-size 2G is smaller than the instance disk \(4G\)/));
  await assert.rejects(settingsWithFlags(paths, { kernel: join(paths.stateDir, 'no-such-kernel') }), badInput(/--kernel .*no such file/));
  assert.equal((await settingsWithFlags(paths, { diskSize: '2G', ephemeral: true })).settings.diskSizeMiB, 2048);
  assert.equal((await settingsWithFlags(paths, { diskSize: '8G' })).settings.diskSizeMiB, 8192);
});
