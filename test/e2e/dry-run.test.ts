/**
 * start --dry-run for both drivers, here on Linux: everything a launch needs is prepared and the
 * hypervisor's command line printed. For vfkit (a plan for an Apple Silicon Mac with Rosetta)
 * the command line is checked against vfkit's grammar, the files it names are the ones vfkit
 * opens (an uncompressed arm64 Image among them), and a fake vfkit accepts it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { sandbox } from '../support/cli.js';
import { deviceOption, parseVfkitArgs } from '../support/vfkit-grammar.js';
import { installFakeVfkit } from '../support/fake-vfkit-bin.js';
import { vmState, requestStateChange } from '../../src/drivers/vfkit/rest.js';
import { waitForExit } from '../../src/drivers/process.js';

interface Printed {
  driver: string;
  argv: string[];
}

test('start --dry-run: the hypervisor command line for each driver, with everything it names prepared and no setting remembered', async (t) => {
  const box = sandbox();
  const name = 'dry';

  const refused = await box.run(['--name', name, 'start', '--driver', 'vfkit']);
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /^linux-builder: --driver vfkit runs on macOS only \(Virtualization\.framework\)\nhint: here it goes with start --dry-run/);
  const json = await box.run(['--name', name, 'start', '--json']);
  assert.equal(json.code, 2);
  assert.match(json.stderr, /--json goes with --dry-run/);

  // the first arm64 plan on a machine fetches Debian's arm64 packages
  const planned = await box.run(['--name', name, 'start', '--dry-run', '--driver', 'vfkit', '--json'], { timeoutMs: 20 * 60_000 });
  assert.equal(planned.code, 0, planned.stderr);
  const plan = JSON.parse(planned.stdout) as Printed;
  assert.equal(plan.driver, 'vfkit');
  assert.equal(plan.argv[0], 'vfkit');

  await t.test("vfkit's grammar reads the command line; every file and directory it names exists, the kernel is an uncompressed arm64 Image", () => {
    const vm = parseVfkitArgs(plan.argv.slice(1));
    const image = readFileSync(vm.bootloader.kernel);
    assert.equal(image.readUInt32LE(0x38), 0x644d5241, 'ARM\\x64 at 0x38: vfkit refuses a compressed arm64 kernel');
    assert.ok(statSync(vm.bootloader.initrd).size > 0);
    assert.match(vm.bootloader.cmdline, /^console=hvc0 .*lb\.shares=virtiofs lb\.address=dhcp .*lb\.sshvsock=22$/);
    const kinds = vm.devices.map((d) => d.kind);
    assert.deepEqual(kinds, ['virtio-serial', 'virtio-fs', 'virtio-fs', 'virtio-fs', 'virtio-blk', 'virtio-net', 'virtio-vsock', 'virtio-rng', 'rosetta']);
    for (const share of vm.devices.filter((d) => d.kind === 'virtio-fs')) assert.ok(statSync(deviceOption(share, 'sharedDir') ?? '').isDirectory());
    const usr = vm.devices.find((d) => d.kind === 'virtio-fs' && deviceOption(d, 'mountTag') === 'hostusr');
    assert.ok(existsSync(join(deviceOption(usr ?? { kind: '', options: [] }, 'sharedDir') ?? '', 'bin', 'socat')), 'the guest relays vsock to sshd with socat');
    const disk = vm.devices.find((d) => d.kind === 'virtio-blk');
    assert.ok(statSync(deviceOption(disk ?? { kind: '', options: [] }, 'path') ?? '').size > 0, 'the sparse disk is created');
    for (const socket of [vm.restSocket ?? '', deviceOption(vm.devices.find((d) => d.kind === 'virtio-vsock') ?? { kind: '', options: [] }, 'socketURL') ?? '']) {
      assert.ok(socket.startsWith(`${box.runtimeDir}/`) && Buffer.byteLength(socket) <= 103, socket);
    }
    const guestShare = join(box.stateHome, 'linux-builder', name, 'guest-share');
    assert.ok(existsSync(join(guestShare, 'rosetta')), 'the guest is told to mount Rosetta');
    assert.match(readFileSync(join(guestShare, 'binfmt'), 'utf8'), /^:rosetta:M::.*:\/run\/rosetta\/rosetta:POCF$/m);
    assert.match(readFileSync(join(guestShare, 'nix.conf'), 'utf8'), /^sandbox-paths = \/bin\/sh=\/bb\/busybox \/run\/rosetta$/m);
  });

  await t.test('nothing is remembered and nothing runs', async () => {
    const config = JSON.parse(readFileSync(join(box.stateHome, 'linux-builder', name, 'config.json'), 'utf8')) as { driver?: string };
    assert.notEqual(config.driver, 'vfkit');
    const status = JSON.parse((await box.run(['--name', name, 'status', '--json'])).stdout) as { state: string };
    assert.equal(status.state, 'stopped');
  });

  await t.test('fake vfkit: it accepts the planned command line (files, grammar) and serves its API until HardStop', async () => {
    const bin = mkdtempSync('/tmp/lbdry-');
    const fake = await installFakeVfkit(bin);
    const child = spawn(fake, plan.argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const rest = parseVfkitArgs(plan.argv.slice(1)).restSocket ?? '';
    let state = await vmState(rest);
    for (let i = 0; i < 100 && state.kind !== 'answered' && child.exitCode === null; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      state = await vmState(rest);
    }
    assert.equal(state.kind, 'answered', output);
    assert.equal(await requestStateChange(rest, 'HardStop'), true);
    assert.ok(await waitForExit(child.pid ?? 0, 10_000));
  });

  await t.test('--no-rosetta plans without the rosetta device: x86_64-linux under qemu-user', async () => {
    const without = await box.run(['--name', name, 'start', '--dry-run', '--driver', 'vfkit', '--no-rosetta', '--json', '--verbose']);
    assert.equal(without.code, 0, without.stderr);
    const vm = parseVfkitArgs((JSON.parse(without.stdout) as Printed).argv.slice(1));
    assert.ok(!vm.devices.some((d) => d.kind === 'rosetta'));
    assert.match(without.stderr, /x86_64-linux runs under qemu-user \(--no-rosetta\)/);
    const guestShare = join(box.stateHome, 'linux-builder', name, 'guest-share');
    assert.match(readFileSync(join(guestShare, 'binfmt'), 'utf8'), /^:qemu-x86_64:/m);
    assert.ok(!existsSync(join(guestShare, 'rosetta')));
  });

  await t.test('the QEMU driver prints its own command line', async () => {
    const qemu = await box.run(['--name', 'dry-qemu', 'start', '--dry-run', '--json']);
    assert.equal(qemu.code, 0, qemu.stderr);
    const printed = JSON.parse(qemu.stdout) as Printed;
    assert.equal(printed.driver, 'qemu');
    assert.match(printed.argv[0] ?? '', /^qemu-system-(x86_64|aarch64)$/);
    assert.ok(printed.argv.includes('-kernel'));
    const text = await box.run(['--name', 'dry-qemu', 'start', '--dry-run']);
    assert.match(text.stdout, /^qemu-system-\S+ -name linux-builder-dry-qemu /);
  });
});
