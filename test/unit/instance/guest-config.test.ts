import { test } from 'node:test';
import assert from 'node:assert/strict';
import { binfmtLines, gcThresholds, guestNixConf, instanceSystems } from '../../../src/instance/guest-config.js';

test('the guest nix.conf: the sandbox as build users with busybox as /bin/sh and no fallback, extra platforms, jobs = cores, only reachable substituters', () => {
  const text = guestNixConf({ systems: ['x86_64-linux', 'i686-linux', 'aarch64-linux'], arch: 'x86_64', cores: 4, substituters: [] });
  const lines = text.split('\n');
  for (const line of [
    'build-users-group = nixbld',
    'sandbox = true',
    'sandbox-fallback = false',
    'sandbox-paths = /bin/sh=/bb/busybox',
    'trusted-users = root',
    'max-jobs = 4',
    'extra-platforms = i686-linux aarch64-linux',
    'substituters =',
  ]) {
    assert.ok(lines.includes(line), line);
  }
  const many = guestNixConf({ systems: ['x86_64-linux'], arch: 'x86_64', cores: 64, substituters: [] }).split('\n');
  assert.ok(many.includes('max-jobs = 32'), 'never more jobs than build users');
  assert.ok(many.includes('cores = 64'));
  assert.ok(!/kvm/.test(text), 'kvm is never advertised without a usable /dev/kvm');
  const online = guestNixConf({ systems: ['x86_64-linux'], arch: 'x86_64', cores: 1, substituters: ['https://cache.example.org'] });
  assert.ok(online.split('\n').includes('substituters = https://cache.example.org'));
  assert.ok(!/extra-platforms/.test(online));
});

test('binfmt entries only for systems the guest kernel cannot run', () => {
  const lines = binfmtLines(instanceSystems(undefined, 'x86_64'), 'x86_64');
  assert.equal(lines.length, 1);
  assert.match(lines[0] ?? '', /^:qemu-aarch64:M::.*:\/usr\/bin\/qemu-aarch64-static:POF$/);
});

test('the guest collects garbage by itself: min-free 5% of the disk (at least 1 GiB), max-free 20% (at least twice min-free), not through Nix\'s own min-free', () => {
  const MiB = 1024 * 1024;
  assert.deepEqual(gcThresholds(40 * 1024), { minFreeBytes: 2048 * MiB, maxFreeBytes: 8192 * MiB });
  assert.deepEqual(gcThresholds(4096), { minFreeBytes: 1024 * MiB, maxFreeBytes: 2048 * MiB });
  assert.deepEqual(gcThresholds(1024), { minFreeBytes: 256 * MiB, maxFreeBytes: 512 * MiB }, 'a small disk keeps room for builds');
  const text = guestNixConf({ systems: ['x86_64-linux'], arch: 'x86_64', cores: 1, substituters: [] });
  assert.ok(!/min-free|max-free/.test(text), text);
});

test('with the Rosetta share, an aarch64 guest runs x86_64-linux through Rosetta (NixOS\'s magic and mask, argv[0] kept, usable in the sandbox) and i686-linux through qemu-user', () => {
  const systems = instanceSystems(undefined, 'aarch64');
  const lines = binfmtLines(systems, 'aarch64', (info) => `/usr/bin/qemu-${info.qemuArch}`, true);
  assert.deepEqual(lines, [
    ':rosetta:M::\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\x3e\\x00:\\xff\\xff\\xff\\xff\\xff\\xfe\\xfe\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/run/rosetta/rosetta:POCF',
    ':qemu-i386:M::\\x7f\\x45\\x4c\\x46\\x01\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\x03\\x00:\\xff\\xff\\xff\\xff\\xff\\xfe\\xfe\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/usr/bin/qemu-i386:POF',
  ]);
  // NixOS's virtualisation.rosetta magic and mask, byte for byte
  assert.ok(lines[0]?.includes(':\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\x3e\\x00:'));
  assert.ok(lines[0]?.includes(':\\xff\\xff\\xff\\xff\\xff\\xfe\\xfe\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:'));
  const conf = guestNixConf({ systems, arch: 'aarch64', cores: 2, substituters: [], rosetta: true }).split('\n');
  assert.ok(conf.includes('sandbox-paths = /bin/sh=/bb/busybox /run/rosetta'), conf.join('\n'));
  assert.ok(conf.includes('extra-platforms = x86_64-linux i686-linux'), 'x86_64 from Rosetta, i686 from qemu-user');
});

test('without the Rosetta share, or without x86_64-linux, or on an x86_64 guest, nothing goes to Rosetta', () => {
  const qemuOnly = binfmtLines(instanceSystems(undefined, 'aarch64'), 'aarch64', (info) => `/usr/bin/qemu-${info.qemuArch}`, false);
  assert.deepEqual(qemuOnly.map((l) => l.split(':')[1]), ['qemu-x86_64', 'qemu-i386']);
  assert.deepEqual(binfmtLines(['aarch64-linux', 'i686-linux'], 'aarch64', undefined, true).map((l) => l.split(':')[1]), ['qemu-i386']);
  assert.deepEqual(binfmtLines(instanceSystems(undefined, 'x86_64'), 'x86_64', undefined, true).map((l) => l.split(':')[1]), ['qemu-aarch64']);
  const conf = guestNixConf({ systems: ['aarch64-linux', 'i686-linux'], arch: 'aarch64', cores: 1, substituters: [], rosetta: true });
  assert.ok(conf.split('\n').includes('sandbox-paths = /bin/sh=/bb/busybox'));
});
