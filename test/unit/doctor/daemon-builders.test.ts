import assert from 'node:assert/strict';
import { test } from 'node:test';
import { daemonBuilderCheck, findDaemonBuilder } from '../../../src/doctor/daemon-builders.js';
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
