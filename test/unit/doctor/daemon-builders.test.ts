import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { daemonBuilderCheck, findDaemonBuilder, includesMatchingNothing, unreadableIncludes } from '../../../src/doctor/daemon-builders.js';
import { upsertBlock } from '../../../src/nix/blocks.js';

const files = new Map<string, string>([
  ['/etc/nix/machines', upsertBlock('ssh://other aarch64-linux\n', 'default', '@/var/lib/linux-builder/default/machines\n', 'last').text],
  ['/etc/nix/by-hand', 'ssh-ng://root@linux-builder-default aarch64-linux /k 2 1 - - -\n'],
  ['/etc/nix/empty', '# nothing\n'],
]);
const read = async (path: string): Promise<string> => {
  if (path === '/root/private') throw Object.assign(new Error('EACCES'), { code: 'EACCES' });
  const text = files.get(path);
  if (text === undefined) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
  return text;
};

test('where the system builders name the instance: a machines file, nix.conf, or nowhere', async () => {
  assert.deepEqual(await findDaemonBuilder('@/etc/nix/machines', 'default', read), { found: 'machines-file', file: '/etc/nix/machines' });
  assert.deepEqual(await findDaemonBuilder('@/etc/nix/empty;@/etc/nix/by-hand', 'default', read), { found: 'machines-file', file: '/etc/nix/by-hand' });
  assert.deepEqual(await findDaemonBuilder('@/etc/nix/machines;@/var/lib/linux-builder/default/machines', 'other', read), { found: 'no', unreadable: [] });
  assert.deepEqual(await findDaemonBuilder('@/etc/nix/missing;@/var/lib/linux-builder/default/machines', 'default', read), { found: 'nix-conf', entry: '@/var/lib/linux-builder/default/machines' });
  assert.deepEqual(await findDaemonBuilder('ssh-ng://root@linux-builder-default aarch64-linux', 'default', read), { found: 'nix-conf', entry: 'ssh-ng://root@linux-builder-default aarch64-linux' });
  assert.deepEqual(await findDaemonBuilder('@/root/private;@/etc/nix/empty', 'default', read), { found: 'no', unreadable: ['/root/private'] });
  // linux-builder-default is not linux-builder-defaultx.
  assert.deepEqual(await findDaemonBuilder('ssh://linux-builder-defaultx x86_64-linux', 'default', read), { found: 'no', unreadable: [] });
});

test('the verdicts: read at every build is ok; nix.conf alone depends on when the daemon started; nowhere fails with the exact command', () => {
  const everyBuild = daemonBuilderCheck({ found: 'machines-file', file: '/etc/nix/machines' }, '@/etc/nix/machines', 'default');
  assert.equal(everyBuild.verdict, 'ok');
  assert.match(everyBuild.detail, /nix-daemon builds through builder "default" for every user: \/etc\/nix\/machines, which it reads at every build/);
  const atStart = daemonBuilderCheck({ found: 'nix-conf', entry: '@/x' }, '@/x', 'default', 'linux');
  assert.equal(atStart.verdict, 'warn');
  assert.equal(atStart.fix, 'sudo systemctl restart nix-daemon.service');
  assert.equal(daemonBuilderCheck({ found: 'nix-conf', entry: '@/x' }, '@/x', 'default', 'darwin').fix, 'sudo launchctl kickstart -k system/org.nixos.nix-daemon');
  const nowhere = daemonBuilderCheck({ found: 'no', unreadable: ['/root/private'] }, '@/root/private', 'b2');
  assert.equal(nowhere.verdict, 'fail');
  assert.match(nowhere.detail, /builders \(@\/root\/private\) do not name builder "b2": its builds will not use it; could not read \/root\/private/);
  assert.match(nowhere.fix ?? '', /^sudo linux-builder --name b2 nix-config --install/);
});

test('ssh -v -G names the Includes that matched nothing: a missing file, or one in a directory this user cannot read', { skip: process.getuid?.() === 0 ? undefined : 'needs root to run ssh as another user' }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lb-include-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await chmod(dir, 0o711);
  await mkdir(join(dir, 'private'), { mode: 0o700 });
  const block = join(dir, 'private', 'nix-ssh_config');
  await writeFile(block, 'Host linux-builder-default\n  HostName 127.0.0.1\n');
  const config = join(dir, 'ssh_config');
  await writeFile(config, `Host linux-builder-default\n  Include ${block}\n  Include ${join(dir, 'missing')}\n`, { mode: 0o644 });
  assert.deepEqual(await unreadableIncludes('linux-builder-default', config, process.env), [join(dir, 'missing')]);
  // as nobody, the private block is unreadable too (ssh says nothing else about it)
  const stderr = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'ssh', '-v', '-G', '-F', config, 'linux-builder-default'], { encoding: 'utf8' }).stderr;
  assert.deepEqual(includesMatchingNothing(stderr), [block, join(dir, 'missing')]);
});
