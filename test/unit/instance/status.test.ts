/** What status says about a stopped instance from its files alone (no VM runs in these tests). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { qemuDriver } from '../../../src/drivers/qemu/index.js';
import { writeLastExit } from '../../../src/instance/last-exit.js';
import { instancePaths } from '../../../src/instance/paths.js';
import { corruptStateAdvice, observe } from '../../../src/instance/status.js';
import { defaultSettings } from '../../../src/config/settings.js';
import { hostArch } from '../../../src/platform/host.js';

async function instance(name: string) {
  const root = await mkdtemp(join(tmpdir(), 'lb-status-'));
  return instancePaths(name, { state: join(root, 'state'), cache: join(root, 'cache'), runtime: join(root, 'run') });
}

const deadPid = 2 ** 22 + 1; // above Linux's pid_max

test('no state dir: stopped, and the note says start makes new keys and nix-config must run again', async () => {
  const paths = await instance('gone');
  const { status } = await observe(paths, qemuDriver);
  assert.equal(status.state, 'stopped');
  assert.equal(status.lastExit, null);
  assert.match(status.reasons.join('\n'), /state\/gone does not exist: .*"linux-builder --name gone start" creates them with new keys .*nix-config --install/);
});

test('a truncated state.json: broken, naming the file, and start replaces it since no VM runs', async () => {
  const paths = await instance('torn');
  await mkdir(paths.stateDir, { recursive: true });
  await writeFile(paths.state, '{"version":1,"phase":"runn');
  const { status } = await observe(paths, qemuDriver);
  assert.equal(status.state, 'broken');
  assert.deepEqual(status.reasons, [
    `${paths.state} is not valid JSON; no VM of this instance runs: "linux-builder --name torn start" replaces the file (or remove it: rm ${paths.state})`,
  ]);
});

test('corrupt state advice: a running VM is stopped first; when processes cannot be listed, the file to remove is named', async () => {
  const paths = await instance('advice');
  assert.match(corruptStateAdvice(paths, 'bad', [123]), /^bad, and the VM still runs \(pid 123\): "linux-builder --name advice stop --force"/);
  assert.match(corruptStateAdvice(paths, 'bad', undefined), new RegExp(`cannot tell whether its VM still runs .*then remove ${paths.state}$`));
});

test('a VM that died without stop: stopped, with how and when from last-exit.json', async () => {
  const paths = await instance('killed');
  await mkdir(paths.stateDir, { recursive: true });
  const run = {
    version: 1, phase: 'running', pid: deadPid, driver: 'qemu', accel: 'tcg', accelReason: '', cores: 1, memoryMiB: 1024,
    systems: ['x86_64-linux'], sshPort: 40000, startedAt: '2026-01-01T00:00:00.000Z', bootSeconds: 8, kernel: 'k', initrd: 'i',
  };
  await writeFile(paths.state, JSON.stringify(run));
  await writeLastExit(paths.lastExit, { pid: deadPid, at: '2026-01-01T00:10:00.000Z', requested: false, reason: 'killed by SIGKILL' });
  const { status } = await observe(paths, qemuDriver);
  assert.equal(status.state, 'stopped');
  assert.deepEqual(status.lastExit, { pid: deadPid, at: '2026-01-01T00:10:00.000Z', requested: false, reason: 'killed by SIGKILL' });
  assert.match(status.reasons.join('\n'), new RegExp(`the VM \\(pid ${deadPid}\\) exited without "stop" at 2026-01-01T00:10:00.000Z: killed by SIGKILL`));
});

test('after the run files are gone, an exit nobody asked for is still the reason; a requested one is not', async () => {
  const paths = await instance('after');
  await mkdir(paths.stateDir, { recursive: true });
  await writeLastExit(paths.lastExit, { pid: 7, at: '2026-01-01T00:10:00.000Z', requested: false, reason: 'killed by SIGKILL' });
  assert.match((await observe(paths, qemuDriver)).status.reasons.join('\n'), /pid 7\) exited without "stop" .*killed by SIGKILL/);
  await writeLastExit(paths.lastExit, { pid: 8, at: '2026-01-01T00:20:00.000Z', requested: true, reason: 'powered off by "linux-builder stop"' });
  const { status } = await observe(paths, qemuDriver);
  assert.deepEqual(status.reasons, []);
  assert.equal(status.lastExit?.reason, 'powered off by "linux-builder stop"');
});

test('arch: the remembered --arch while stopped, the host\'s without one; a state.json of an earlier version reads as the host\'s', async () => {
  const paths = await instance('arch');
  await mkdir(paths.stateDir, { recursive: true });
  const settings = { ...defaultSettings(), arch: 'aarch64' };
  await writeFile(paths.config, JSON.stringify(settings));
  assert.equal((await observe(paths, qemuDriver)).status.arch, 'aarch64');
  await writeFile(paths.config, JSON.stringify(defaultSettings()));
  assert.equal((await observe(paths, qemuDriver)).status.arch, hostArch());
  const run = {
    version: 1, phase: 'running', pid: deadPid, driver: 'qemu', accel: 'tcg', accelReason: '', cores: 1, memoryMiB: 1024,
    systems: ['aarch64-linux'], sshPort: 40000, startedAt: '2026-01-01T00:00:00.000Z', bootSeconds: 8, kernel: 'k', initrd: 'i',
  };
  await writeFile(paths.state, JSON.stringify({ ...run, arch: 'aarch64' }));
  assert.equal((await observe(paths, qemuDriver)).status.arch, 'aarch64', 'the VM\'s own, recorded at launch');
  await writeFile(paths.state, JSON.stringify(run));
  assert.equal((await observe(paths, qemuDriver)).status.arch, hostArch());
});

test('userland: the one state.json records (the host\'s, or which Debian tree); null from an earlier state.json or with no state', async () => {
  const paths = await instance('userland');
  await mkdir(paths.stateDir, { recursive: true });
  await writeFile(paths.config, JSON.stringify(defaultSettings()));
  assert.equal((await observe(paths, qemuDriver)).status.userland, null, 'no VM, no userland');
  const run = {
    version: 1, phase: 'running', pid: deadPid, driver: 'qemu', arch: 'aarch64', accel: 'tcg', accelReason: '', cores: 1, memoryMiB: 1024,
    systems: ['aarch64-linux'], sshPort: 40000, startedAt: '2026-01-01T00:00:00.000Z', bootSeconds: 8, kernel: 'k', initrd: 'i',
  };
  const debian = { kind: 'debian', description: 'Debian trixie arm64, 213 packages', usr: '/cache/debian/trees/0eb0a530e36b15642f55c80f0eec7dc8/root/usr', tree: '0eb0a530e36b15642f55c80f0eec7dc8' };
  await writeFile(paths.state, JSON.stringify({ ...run, userland: debian }));
  assert.deepEqual((await observe(paths, qemuDriver)).status.userland, debian);
  await writeFile(paths.state, JSON.stringify(run));
  assert.equal((await observe(paths, qemuDriver)).status.userland, null, 'started by an earlier version');
});
