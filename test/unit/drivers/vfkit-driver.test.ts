/**
 * The vfkit driver's process side against a fake vfkit (test/support/fake-vfkit.ts): vfkit runs
 * only on macOS, so launch, the REST client, process identity and the stop ladder are tested
 * against a program that checks its argv with vfkit's grammar and serves vfkit's REST API.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { VfkitConfig } from '../../../src/drivers/vfkit/argv.js';
import { findVfkitProcesses, forceStopVfkit, launchVfkit, ownsVfkitProcess, pressVfkitPowerButton, stopVfkit } from '../../../src/drivers/vfkit/process.js';
import { isStopped, requestStateChange, vmState } from '../../../src/drivers/vfkit/rest.js';
import { isAlive, killHard, waitForExit } from '../../../src/drivers/process.js';
import { installFakeVfkit } from '../../support/fake-vfkit-bin.js';

// unix socket paths must stay short: a temp dir directly under /tmp
let dir: string;
let binDir: string;
before(async () => {
  dir = await mkdtemp('/tmp/lbvfk-');
  binDir = join(dir, 'bin');
  await mkdir(binDir);
  await installFakeVfkit(binDir);
  await writeFile(join(dir, 'Image'), 'kernel');
  await writeFile(join(dir, 'initrd'), 'initrd');
  await writeFile(join(dir, 'disk.img'), '');
  await mkdir(join(dir, 'share'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function config(name: string, overrides: Partial<VfkitConfig> = {}): VfkitConfig {
  return {
    cpus: 2,
    memoryMiB: 1024,
    kernel: join(dir, 'Image'),
    initrd: join(dir, 'initrd'),
    kernelArgs: ['quiet'],
    devices: [
      { kind: 'virtio-serial', logFile: join(dir, `${name}-console.log`) },
      { kind: 'virtio-fs', sharedDir: join(dir, 'share'), mountTag: 'lbconfig' },
      { kind: 'rosetta', mountTag: 'rosetta' },
      { kind: 'virtio-blk', path: join(dir, 'disk.img') },
      { kind: 'virtio-vsock', port: 22, socket: join(dir, `${name}-ssh.sock`), direction: 'connect' },
      { kind: 'virtio-rng' },
    ],
    restSocket: join(dir, `${name}.sock`),
    pidFile: join(dir, `${name}.pid`),
    ...overrides,
  };
}

const path = (): string => `${binDir}:${process.env.PATH ?? ''}`;

/** Launches the fake with env and waits until its REST API answers. */
async function launched(name: string, env: Record<string, string> = {}, overrides: Partial<VfkitConfig> = {}) {
  const c = config(name, overrides);
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const vm = await launchVfkit(c, join(dir, `${name}-vm.log`), path());
    for (let i = 0; i < 200 && (await vmState(c.restSocket, 500)).kind !== 'answered'; i++) {
      if (!(await isAlive(vm.pid))) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return { vm, c };
  } finally {
    for (const key of Object.keys(env)) {
      if (saved[key] === undefined) delete process.env[key];
      else process.env[key] = saved[key];
    }
  }
}

test('fake vfkit: launch spawns it detached; it accepts the argv, writes its pid file and console, and answers GET /vm/state', async () => {
  const { vm, c } = await launched('up');
  try {
    const state = await vmState(c.restSocket);
    assert.equal(state.kind, 'answered', await readFile(join(dir, 'up-vm.log'), 'utf8'));
    assert.equal(state.kind === 'answered' && state.reply.state, 'VirtualMachineStateRunning');
    assert.equal((await readFile(c.pidFile, 'utf8')).trim(), String(vm.pid));
    assert.equal((await stat(c.pidFile)).mode & 0o777, 0o600);
    assert.match(await readFile(join(dir, 'up-console.log'), 'utf8'), /cmdline console=hvc0 quiet/);
    assert.equal(await isStopped(c.restSocket), false);
  } finally {
    killHard(vm.pid);
  }
});

test('fake vfkit: process identity is the REST socket in its command line', async () => {
  const { vm, c } = await launched('who');
  try {
    assert.equal(await ownsVfkitProcess(vm.pid, c.restSocket), true);
    assert.equal(await ownsVfkitProcess(vm.pid, join(dir, 'other.sock')), false);
    assert.equal(await ownsVfkitProcess(process.pid, c.restSocket), false);
    assert.deepEqual(await findVfkitProcesses(c.restSocket), [vm.pid]);
    assert.deepEqual(await findVfkitProcesses(join(dir, 'nobody.sock')), []);
  } finally {
    killHard(vm.pid);
  }
});

test('fake vfkit: stop asks Stop, the guest powers off, vfkit exits and removes its sockets', async () => {
  const { vm, c } = await launched('stop');
  const outcome = await stopVfkit(vm.pid, c.restSocket, { graceMs: 10_000, hardMs: 5000 });
  assert.equal(outcome, 'stopped');
  assert.equal(await isAlive(vm.pid), false);
  assert.equal(await stat(c.restSocket).catch(() => undefined), undefined, 'REST socket removed');
  assert.match(await readFile(join(dir, 'stop-console.log'), 'utf8'), /reboot: Power down/);
  assert.equal((await vmState(c.restSocket)).kind, 'gone');
  assert.equal(await isStopped(c.restSocket), true, 'nothing accepts on the socket: stopped');
});

test('fake vfkit: the power button is Stop; the guest powers off and vfkit exits; a pid that is not this vfkit gets no press', async () => {
  const { vm, c } = await launched('button');
  assert.equal(await pressVfkitPowerButton(vm.pid, join(dir, 'someone-else.sock')), false);
  assert.equal(await isAlive(vm.pid), true);
  assert.equal(await pressVfkitPowerButton(vm.pid, c.restSocket), true);
  assert.ok(await waitForExit(vm.pid, 5000));
  assert.match(await readFile(join(dir, 'button-console.log'), 'utf8'), /reboot: Power down/);
  assert.equal(await pressVfkitPowerButton(vm.pid, c.restSocket), false, 'gone: nothing to press');
});

test('fake vfkit: a guest that ignores Stop is stopped by HardStop after the grace time', async () => {
  const { vm, c } = await launched('ignores', { FAKE_VFKIT_IGNORE_STOP: '1' });
  const outcome = await stopVfkit(vm.pid, c.restSocket, { graceMs: 500, hardMs: 5000 });
  assert.equal(outcome, 'hard-stopped');
  assert.equal(await isAlive(vm.pid), false);
});

test('fake vfkit: forceStop (stop --force) is HardStop at once', async () => {
  const { vm, c } = await launched('force', { FAKE_VFKIT_STOP_MS: '60000' });
  await forceStopVfkit(vm.pid, c.restSocket, 10_000);
  assert.equal(await isAlive(vm.pid), false);
  assert.doesNotMatch(await readFile(join(dir, 'force-console.log'), 'utf8'), /Power down/, 'no guest shutdown: the plug was pulled');
});

test('fake vfkit: a vfkit that no longer answers its API is killed; a killed one leaves a socket that reads as stopped', async () => {
  const { vm, c } = await launched('wedged');
  process.kill(vm.pid, 'SIGSTOP');
  try {
    const outcome = await stopVfkit(vm.pid, c.restSocket, { graceMs: 0, hardMs: 1000 });
    assert.equal(outcome, 'killed');
  } finally {
    killHard(vm.pid);
  }
  assert.ok(await waitForExit(vm.pid, 5000));
  assert.ok(await stat(c.restSocket), 'SIGKILL left the socket file behind');
  assert.equal((await vmState(c.restSocket)).kind, 'gone', 'a refused connection means stopped');
  assert.equal(await requestStateChange(c.restSocket, 'HardStop'), false, 'nothing to stop');
  // the next launch removes what the killed vfkit left and listens again
  const again = await launched('wedged');
  try {
    assert.equal((await vmState(again.c.restSocket)).kind, 'answered');
  } finally {
    await forceStopVfkit(again.vm.pid, again.c.restSocket, 5000);
  }
});

test('fake vfkit: SIGTERM ends it (vfkit asks the guest to stop, then stops it)', async () => {
  const { vm } = await launched('term');
  process.kill(vm.pid, 'SIGTERM');
  assert.ok(await waitForExit(vm.pid, 5000));
});

test('fake vfkit: stop on a pid that is not this vfkit signals nothing', async () => {
  const { vm, c } = await launched('mine');
  try {
    assert.equal(await stopVfkit(vm.pid, join(dir, 'someone-else.sock'), { graceMs: 100, hardMs: 100 }), 'not-running');
    assert.equal(await isAlive(vm.pid), true);
  } finally {
    await forceStopVfkit(vm.pid, c.restSocket, 5000);
  }
});

test('fake vfkit: the vsock socket (connect) relays to the guest port', async () => {
  const guest = createServer((socket) => socket.end('SSH-2.0-guest\r\n'));
  await new Promise<void>((resolve) => guest.listen(0, '127.0.0.1', resolve));
  const port = (guest.address() as { port: number }).port;
  const { vm, c } = await launched('vsock', { FAKE_VFKIT_VSOCK_TARGET: `127.0.0.1:${port}` });
  try {
    const banner = await new Promise<string>((resolve, reject) => {
      const socket = connect(join(dir, 'vsock-ssh.sock'));
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    assert.equal(banner, 'SSH-2.0-guest\r\n');
  } finally {
    guest.close();
    await forceStopVfkit(vm.pid, c.restSocket, 5000);
  }
});

test('fake vfkit: launch says how to install vfkit when it is not on PATH', async () => {
  await assert.rejects(launchVfkit(config('none'), join(dir, 'none-vm.log'), '/nonexistent'), (error: Error & { hint?: string }) => {
    assert.match(error.message, /vfkit not found on PATH/);
    assert.match(error.hint ?? '', /brew install vfkit/);
    return true;
  });
});

test('fake vfkit: a file vfkit must open is missing: it exits at once saying which', async () => {
  const { vm } = await launched('nofile', {}, { initrd: join(dir, 'absent-initrd') });
  assert.ok(await waitForExit(vm.pid, 10_000));
  assert.equal((await Promise.race([vm.exited, new Promise((resolve) => setTimeout(resolve, 1000, undefined))]) as { code?: number } | undefined)?.code, 1);
  assert.match(await readFile(join(dir, 'nofile-vm.log'), 'utf8'), /failed to open file .*absent-initrd/);
});
