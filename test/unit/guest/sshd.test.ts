import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseRelations } from '../../../src/debian/packages.js';
import { findSshd, libraryDepends, sshdLibraries, sshdVersionConfig } from '../../../src/guest/sshd.js';

const hostHasSshd = await stat('/usr/sbin/sshd').then(() => true, () => false);

test('a cached unpacked openssh-server is used without downloading, with its libs and split helpers', { skip: hostHasSshd && 'the host has its own sshd' }, async () => {
  const cacheDir = await mkdtemp(join(tmpdir(), 'lb-sshd-'));
  try {
    const tree = join(cacheDir, 'sshd/1_9.9p1-1');
    await mkdir(join(tree, 'usr/sbin'), { recursive: true });
    await mkdir(join(tree, 'usr/lib/openssh'), { recursive: true });
    await mkdir(join(tree, 'lib/x86_64-linux-gnu'), { recursive: true });
    await copyFile('/usr/bin/true', join(tree, 'usr/sbin/sshd'));
    await copyFile('/usr/bin/true', join(tree, 'usr/lib/openssh/sshd-session'));
    await writeFile(join(tree, 'lib/x86_64-linux-gnu/libwrap.so.0'), '');
    // an unfinished download is never picked
    await mkdir(join(cacheDir, 'sshd/.download-x/root/usr/sbin'), { recursive: true });
    const logs: string[] = [];
    const found = await findSshd({ cacheDir, log: (line) => logs.push(line) });
    assert.deepEqual(found, {
      sshd: join(tree, 'usr/sbin/sshd'),
      libDirs: [join(tree, 'lib/x86_64-linux-gnu')],
      helpers: { 'sshd-session': join(tree, 'usr/lib/openssh/sshd-session') },
      split: true,
      source: '1_9.9p1-1',
    });
    assert.deepEqual(logs, []);
    const libraries = await sshdLibraries(found);
    assert.ok(libraries.get('libc.so.6')?.endsWith('/libc.so.6'));
    assert.ok(![...libraries.keys()].some((name) => name.startsWith('ld-linux')));
  } finally {
    await rm(cacheDir, { recursive: true, force: true });
  }
});

test('the libraries of every binary are listed; one ldd cannot read fails naming it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lb-sshd-libs-'));
  try {
    const sshd = '/usr/bin/true';
    const libraries = await sshdLibraries({ sshd, libDirs: [], helpers: {}, split: false, source: 'test' });
    assert.ok(libraries.size > 0);
    await assert.rejects(
      sshdLibraries({ sshd, libDirs: [], helpers: { 'sshd-session': join(dir, 'missing') }, split: true, source: 'test' }),
      /cannot list the libraries of .*missing with ldd/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the library packages a downloaded sshd may need come from its Depends, first alternatives, no duplicates', () => {
  const depends = [
    ...parseRelations('init-system-helpers (>= 1.54~)'),
    ...parseRelations('adduser, libpam-modules, openssh-client (= 1:10.0p1-7), debconf (>= 0.5) | debconf-2.0, libc6 (>= 2.38),\n libwtmpdb0 (>= 0.13.0), libssl3t64 (>= 3.0.0) | libssl-alt, zlib1g (>= 1:1.1.4), libaudit1:any, libc6'),
  ];
  assert.deepEqual(libraryDepends(depends), ['libpam-modules', 'libc6', 'libwtmpdb0', 'libssl3t64', 'libaudit1']);
});

test('sshd_config by version: a split OpenSSH (9.8+) names its helpers and never penalises the one NAT address; an older one gets neither', () => {
  const sshd = { sshd: '/t/usr/sbin/sshd', libDirs: [], source: 'test' };
  const downloaded = { ...sshd, split: true, helpers: { 'sshd-session': '/t/usr/lib/openssh/sshd-session', 'sshd-auth': '/t/usr/lib/openssh/sshd-auth' } };
  assert.deepEqual(sshdVersionConfig(downloaded, '/opt/ssh'), ['SshdSessionPath /opt/ssh/sshd-session', 'SshdAuthPath /opt/ssh/sshd-auth', 'PerSourcePenalties no']);
  // the host's split sshd finds its helpers through the /usr share
  assert.deepEqual(sshdVersionConfig({ ...sshd, split: true, helpers: {} }, '/opt/ssh'), ['PerSourcePenalties no']);
  // OpenSSH before 9.8 refuses to start on a keyword it does not know
  assert.deepEqual(sshdVersionConfig({ ...sshd, split: false, helpers: {} }, '/opt/ssh'), []);
});
