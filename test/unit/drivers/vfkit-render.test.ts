/**
 * The launch plan rendered for vfkit: the same plan the QEMU driver renders, each device as
 * vfkit's, and the result parsed back by vfkit's grammar (test/support/vfkit-grammar.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { vfkitDriver, vfkitPlanner } from '../../../src/drivers/vfkit/index.js';
import { vfkitConfig } from '../../../src/drivers/vfkit/render.js';
import { UserError } from '../../../src/errors.js';
import { launchPlan, type PlanInputs } from '../../../src/instance/launch-plan.js';
import { instancePaths } from '../../../src/instance/paths.js';
import { deviceOption, parseVfkitArgs } from '../../support/vfkit-grammar.js';

const paths = instancePaths('mac', { state: '/Users/ada/Library/Application Support/linux-builder', cache: '/Users/ada/Library/Caches/linux-builder', runtime: '/var/folders/xy/T/linux-builder-501' });
const control = vfkitDriver.control(paths.runtimeDir);
const inputs: PlanInputs = {
  paths,
  hostArch: 'aarch64',
  guestArch: 'aarch64',
  accel: 'hvf',
  cores: 4,
  memoryMiB: 4096,
  kernel: { path: '/Users/ada/Library/Caches/linux-builder/kernels/Image-abc', format: 'image' },
  initrd: '/Users/ada/Library/Caches/linux-builder/images/guest.cpio',
  usr: '/Users/ada/Library/Caches/linux-builder/debian/trees/k/root/usr',
  transport: vfkitDriver.capabilities.shares[0] ?? '9p',
  network: vfkitDriver.capabilities.network,
  ssh: { kind: 'unix', path: paths.guestSshSocket },
  ephemeral: false,
  rosetta: {},
};

test('vfkit\'s capabilities: virtio-fs shares, the NAT by DHCP, SSH over a vsock socket, Rosetta; the control is the REST socket', () => {
  assert.deepEqual(vfkitDriver.capabilities, {
    shares: ['virtiofs'],
    network: { kind: 'dhcp', dns: '192.168.64.1', hostNet: '192.168.64.0/24' },
    ssh: 'vsock-socket',
    rosetta: true,
    guestArch: 'aarch64',
  });
  assert.deepEqual(control, { runtimeDir: paths.runtimeDir, sockets: [`${paths.runtimeDir}/vfkit.sock`] });
});

test('the plan as vfkit\'s command line: every device rendered, parsed back by vfkit\'s grammar', async () => {
  const argv = await vfkitDriver.commandLine(launchPlan(inputs), control);
  assert.equal(argv[0], 'vfkit');
  const vm = parseVfkitArgs(argv.slice(1));
  assert.equal(vm.cpus, 4);
  assert.equal(vm.memoryMiB, 4096);
  assert.equal(vm.bootloader.kernel, inputs.kernel.path);
  assert.equal(vm.bootloader.cmdline, 'console=hvc0 panic=-1 quiet lb.shares=virtiofs lb.address=dhcp lb.dns=192.168.64.1 lb.hostnet=192.168.64.0/24 lb.sshvsock=22');
  assert.deepEqual(vm.devices.map((d) => d.kind), ['virtio-serial', 'virtio-fs', 'virtio-fs', 'virtio-fs', 'virtio-blk', 'virtio-net', 'virtio-vsock', 'virtio-rng', 'rosetta']);
  const shares = vm.devices.filter((d) => d.kind === 'virtio-fs').map((d) => [deviceOption(d, 'mountTag'), deviceOption(d, 'sharedDir')]);
  assert.deepEqual(shares, [['hostusr', inputs.usr], ['nixstore', '/nix/store'], ['lbconfig', paths.guestShare]]);
  const vsock = vm.devices.find((d) => d.kind === 'virtio-vsock');
  assert.ok(vsock);
  assert.equal(deviceOption(vsock, 'socketURL'), paths.guestSshSocket);
  assert.equal(deviceOption(vsock, 'port'), '22');
  assert.equal(deviceOption(vsock, 'connect'), '', 'vfkit listens on the socket and connects to the guest');
  assert.equal(vm.restSocket, `${paths.runtimeDir}/vfkit.sock`);
  assert.equal(vm.pidFile, `${paths.runtimeDir}/vm.pid`);
});

test('what vfkit does not have is refused: 9p shares, a forwarded port, an x86_64 guest, a compressed kernel', () => {
  const refused = (plan: Partial<PlanInputs>, message: RegExp): void => {
    assert.throws(() => vfkitConfig(launchPlan({ ...inputs, ...plan }), control), (error: unknown) => error instanceof UserError && message.test(error.message));
  };
  refused({ transport: '9p' }, /virtio-fs only, not 9p/);
  refused({ ssh: { kind: 'tcp', host: '127.0.0.1', port: 40022 } }, /cannot forward a host port/);
  refused({ guestArch: 'x86_64' }, /aarch64 guests/);
  refused({ kernel: { path: '/k/vmlinuz', format: 'bzImage' } }, /uncompressed arm64 Image/);
});

test('off macOS the planner renders the command line but launches nothing; vfkit takes no --accel kvm or tcg', async () => {
  assert.deepEqual(await vfkitPlanner.commandLine(launchPlan(inputs), control), await vfkitDriver.commandLine(launchPlan(inputs), control));
  await assert.rejects(vfkitPlanner.launch(launchPlan(inputs), control), /vfkit runs on macOS only/);
  assert.equal(await vfkitPlanner.rosettaInstalled(), true, 'a plan for an Apple Silicon Mac with Rosetta');
  assert.equal((await vfkitDriver.chooseAccel('auto', 'aarch64')).accel, 'hvf');
  await assert.rejects(vfkitDriver.chooseAccel('tcg', 'aarch64'), /does not apply to vfkit/);
});
