import { test } from 'node:test';
import assert from 'node:assert/strict';
import { binfmtLines, guestNixConf, instanceSystems } from '../../../src/instance/guest-config.js';

test('the guest nix.conf: no build users, no sandbox, extra platforms, jobs = cores, only reachable substituters', () => {
  const text = guestNixConf({ systems: ['x86_64-linux', 'i686-linux', 'aarch64-linux'], arch: 'x86_64', cores: 4, substituters: [] });
  const lines = text.split('\n');
  for (const line of ['build-users-group =', 'sandbox = false', 'trusted-users = root', 'max-jobs = 4', 'extra-platforms = i686-linux aarch64-linux', 'substituters =']) {
    assert.ok(lines.includes(line), line);
  }
  assert.ok(!/kvm/.test(text), 'kvm is never advertised without a usable /dev/kvm');
  const online = guestNixConf({ systems: ['x86_64-linux'], arch: 'x86_64', cores: 1, substituters: ['https://cache.example.org'] });
  assert.ok(online.split('\n').includes('substituters = https://cache.example.org'));
  assert.ok(!/extra-platforms/.test(online));
});

test('binfmt entries only for systems the guest kernel cannot run', () => {
  const lines = binfmtLines(instanceSystems(undefined, 'x86_64'), 'x86_64');
  assert.equal(lines.length, 1);
  assert.match(lines[0] ?? '', /^:qemu-aarch64:M::.*:\/usr\/bin\/qemu-aarch64-static:F$/);
});
