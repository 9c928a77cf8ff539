/**
 * The driver against real processes: QEMU itself booting a halting fake PVH kernel (skipped
 * where qemu-system-x86_64 is missing), and a stand-in process for the SIGKILL path.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { ExitInfo, LaunchPlan, RunningVm, VmControl } from '../../../src/drivers/driver.js';
import { isAlive, killHard, spawnDetached, findOnPath } from '../../../src/drivers/process.js';
import { qemuDriver } from '../../../src/drivers/qemu/index.js';
import { QmpClient } from '../../../src/drivers/qemu/qmp.js';
import { qemuFiles } from '../../../src/drivers/qemu/files.js';
import { fakeVmlinux } from '../../support/fake-kernel.js';

// Unix socket paths must stay short: a temp dir directly under /tmp.
let dir: string;
before(async () => {
  dir = await mkdtemp('/tmp/lbdrv-');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function plan(name: string, sshPort = 0): LaunchPlan {
  return {
    name,
    hostArch: 'x86_64',
    guestArch: 'x86_64',
    accel: 'tcg',
    cores: 1,
    memoryMiB: 64,
    kernel: { path: join(dir, 'vmlinux'), format: 'vmlinux-pvh' },
    initrd: join(dir, 'initrd'),
    kernelArgs: [],
    devices: [
      { kind: 'console', log: join(dir, `${name}-console.log`) },
      { kind: 'share', tag: 'share0', hostPath: dir, transport: '9p' },
      { kind: 'net', forwards: [{ host: { kind: 'tcp', host: '127.0.0.1', port: sshPort }, guestPort: 22 }] },
    ],
    processLog: join(dir, `${name}-vm.log`),
  };
}

/** The control of an instance whose runtime dir is <dir>/<name>. */
async function control(name: string): Promise<VmControl> {
  await mkdir(join(dir, name), { recursive: true });
  return qemuDriver.control(join(dir, name));
}

test('capabilities: 9p shares, QEMU\'s user network at its fixed addresses, SSH through a forwarded port, no Rosetta', async () => {
  assert.equal(qemuDriver.name, 'qemu');
  assert.deepEqual(qemuDriver.capabilities, {
    shares: ['virtiofs', '9p'],
    network: { kind: 'static', address: '10.0.2.15/24', gateway: '10.0.2.2', dns: '10.0.2.3', hostNet: '10.0.2.0/24' },
    ssh: 'forwarded-port',
    rosetta: false,
  });
  assert.equal(await qemuDriver.rosettaInstalled(), false);
});

test('the control names the QMP socket in the runtime dir; it is the only socket to check', () => {
  const c = qemuDriver.control('/run/lb/x');
  assert.deepEqual(c, { runtimeDir: '/run/lb/x', sockets: ['/run/lb/x/qmp.sock'] });
  assert.deepEqual(qemuFiles(c), { qmpSocket: '/run/lb/x/qmp.sock', pidFile: '/run/lb/x/vm.pid' });
});


test('launch boots QEMU detached, answers QMP, owns its pid, and forceStop quits it', async (t) => {
  if (process.arch !== 'x64' || (await findOnPath('qemu-system-x86_64')) === undefined) {
    t.skip('needs qemu-system-x86_64 on an x86_64 host');
    return;
  }
  await writeFile(join(dir, 'vmlinux'), fakeVmlinux({ pvhNote: true }));
  await writeFile(join(dir, 'initrd'), 'initrd');
  const p = plan('boot', 20000 + (process.pid % 20000));
  const c = await control('boot');
  const files = qemuFiles(c);
  await writeFile(files.qmpSocket, 'stale'); // a leftover from a killed VM must not stop the launch
  const vm = await qemuDriver.launch(p, c);
  try {
    let client: QmpClient | undefined;
    for (let tries = 0; client === undefined && tries < 100; tries++) {
      client = await QmpClient.connect(files.qmpSocket, 500).catch(async () => {
        await new Promise((resolve) => setTimeout(resolve, 50));
        return undefined;
      });
    }
    assert.ok(client, `QMP never answered; vm.log: ${await readFile(p.processLog, 'utf8').catch(() => '')}`);
    // What the product relies on: the VM runs. Other fields come and go with QEMU versions (10 dropped singlestep).
    const vmStatus = (await client.execute('query-status')) as { status?: unknown; running?: unknown };
    assert.equal(vmStatus.status, 'running');
    assert.equal(vmStatus.running, true);
    client.close();
    assert.equal((await readFile(files.pidFile, 'utf8')).trim(), String(vm.pid));
    assert.equal(await qemuDriver.ownsProcess(vm.pid, c), true);
    assert.equal(await qemuDriver.ownsProcess(vm.pid, await control('other')), false);
    assert.equal(await qemuDriver.ownsProcess(process.pid, c), false);
    assert.equal(await qemuDriver.pressPowerButton(vm.pid, c), false, 'microvm: no power key its guest listens to');
    assert.equal(await isAlive(vm.pid), true);
    await qemuDriver.forceStop(vm.pid, c, 5000);
    assert.equal(await isAlive(vm.pid), false);
    assert.deepEqual(await exitOf(vm), { code: 0, signal: null }, 'QMP quit, not SIGKILL');
    await stat(p.processLog);
    await qemuDriver.clearControl(c);
    await assert.rejects(stat(files.pidFile), /ENOENT/);
  } finally {
    killHard(vm.pid);
  }
});

test('forceStop SIGKILLs a VM whose QMP does not answer', async () => {
  const c = await control('deaf');
  // A stand-in whose command line names the socket, as QEMU's does; nothing listens there.
  const vm = await spawnDetached(['sh', '-c', 'sleep 30', `unix:${qemuFiles(c).qmpSocket},server=on,wait=off`], join(dir, 'deaf.log'));
  try {
    assert.equal(await qemuDriver.ownsProcess(vm.pid, c), true);
    await qemuDriver.forceStop(vm.pid, c, 1000);
    assert.equal(await isAlive(vm.pid), false);
    assert.equal((await exitOf(vm)).signal, 'SIGKILL');
  } finally {
    killHard(vm.pid);
  }
});

test('findProcesses finds this instance\'s VM by its command line, and no other', async () => {
  const c = await control('lost');
  const qmp = qemuFiles(c).qmpSocket;
  const vm = await spawnDetached(['sh', '-c', 'sleep 30', `unix:${qmp},server=on,wait=off`], join(dir, 'lost.log'));
  const other = await spawnDetached(['sh', '-c', 'sleep 30', `unix:${qmp}x,server=on,wait=off`], join(dir, 'lost-other.log'));
  try {
    assert.deepEqual(await qemuDriver.findProcesses(c), [vm.pid]);
    killHard(vm.pid);
    await exitOf(vm);
    assert.deepEqual(await qemuDriver.findProcesses(c), []);
  } finally {
    killHard(vm.pid);
    killHard(other.pid);
  }
});

test('forceStop leaves alone a pid that is not this VM', async () => {
  const c = await control('stranger');
  const stranger = await spawnDetached(['sleep', '30'], join(dir, 'stranger.log'));
  try {
    await qemuDriver.forceStop(stranger.pid, c, 500);
    assert.equal(await isAlive(stranger.pid), true);
  } finally {
    killHard(stranger.pid);
  }
});

test('chooseAccel decides from the real host', async () => {
  const decision = await qemuDriver.chooseAccel('tcg', 'x86_64');
  assert.deepEqual(decision, { accel: 'tcg', reason: 'TCG requested' });
});

/** vm.exited does not keep the event loop alive; a timer does while we wait for it. */
function exitOf(vm: RunningVm): Promise<ExitInfo> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('no exit event within 10 s')), 10_000);
  });
  return Promise.race([vm.exited, deadline]).finally(() => clearTimeout(timer));
}
