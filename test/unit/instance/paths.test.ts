import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkSocketPath, instancePaths, roots, validateInstanceName } from '../../../src/instance/paths.js';
import { UserError } from '../../../src/errors.js';

test('instance names are plain words', () => {
  for (const good of ['default', 'big-builds', 'x86_64', 'A1']) assert.equal(validateInstanceName(good), good);
  for (const bad of ['', '.', '..', '../etc', 'a/b', 'a b', 'a;b', '$(id)', '`x`', '-rf', 'a'.repeat(41), 'é', 'a\nb']) {
    assert.throws(() => validateInstanceName(bad), (e: unknown) => e instanceof UserError && e.exitCode === 2, bad);
  }
});

test('XDG directories are honoured and every file sits under its instance', () => {
  const r = roots({ HOME: '/home/u', XDG_STATE_HOME: '/s', XDG_CACHE_HOME: '/c', XDG_RUNTIME_DIR: '/run/user/1000' }, 'linux');
  assert.deepEqual(r, { state: '/s/linux-builder', cache: '/c/linux-builder', runtime: '/run/user/1000/linux-builder' });
  const p = instancePaths('dev', r);
  assert.equal(p.stateDir, '/s/linux-builder/dev');
  assert.equal(p.runtimeDir, '/run/user/1000/linux-builder/dev');
  for (const socket of [p.controlSocket, p.guestSshSocket]) assert.ok(socket.startsWith(`${p.runtimeDir}/`), socket);
  for (const file of [p.config, p.state, p.clientKey, p.knownHosts, p.sshConfig, p.consoleLog, p.guestShare]) {
    assert.ok(file.startsWith(`${p.stateDir}/`), file);
  }
});

test('macOS uses Application Support and Caches', () => {
  const r = roots({ HOME: '/Users/u' }, 'darwin', 501);
  assert.equal(r.state, '/Users/u/Library/Application Support/linux-builder');
  assert.equal(r.cache, '/Users/u/Library/Caches/linux-builder');
});

test('root without XDG variables uses the system\'s places, with no spaces for the machines file; on macOS not /var/lib/linux-builder, which nix-darwin deletes', () => {
  assert.deepEqual(roots({ HOME: '/root' }, 'linux', 0), { state: '/var/lib/linux-builder', cache: '/var/cache/linux-builder', runtime: '/tmp/linux-builder-0' });
  assert.deepEqual(roots({ HOME: '/var/root' }, 'darwin', 0), { state: '/var/db/linux-builder', cache: '/Library/Caches/linux-builder', runtime: '/tmp/linux-builder-0' });
  assert.equal(roots({ HOME: '/home/u' }, 'linux', 1000).state, '/home/u/.local/state/linux-builder');
});

test('socket paths over 103 bytes are refused, not truncated', () => {
  checkSocketPath(`/${'a'.repeat(102)}`);
  assert.throws(() => checkSocketPath(`/${'a'.repeat(103)}`), /over the 103-byte limit/);
});
