import { test } from 'node:test';
import assert from 'node:assert/strict';
import { devicesOf } from '../../../src/drivers/devices.js';
import { launchPlan, type PlanInputs } from '../../../src/instance/launch-plan.js';
import { instancePaths } from '../../../src/instance/paths.js';

const paths = instancePaths('plan', { state: '/s', cache: '/c', runtime: '/r' });
const inputs: PlanInputs = {
  paths,
  hostArch: 'x86_64',
  guestArch: 'x86_64',
  accel: 'tcg',
  cores: 2,
  memoryMiB: 1024,
  kernel: { path: '/c/kernels/vmlinux', format: 'vmlinux-pvh' },
  initrd: '/c/images/guest.cpio',
  usr: '/usr',
  transport: '9p',
  network: { kind: 'static', address: '10.0.2.15/24', gateway: '10.0.2.2', dns: '10.0.2.3', hostNet: '10.0.2.0/24' },
  ssh: { kind: 'tcp', host: '127.0.0.1', port: 40022 },
  ephemeral: false,
};

test('the plan: console, the /usr, store and config shares over the chosen transport, the disk, the NIC, entropy', () => {
  const plan = launchPlan(inputs);
  assert.deepEqual(plan.devices.map((d) => d.kind), ['console', 'share', 'share', 'share', 'disk', 'net', 'rng']);
  assert.deepEqual(devicesOf(plan.devices, 'share'), [
    { kind: 'share', tag: 'hostusr', hostPath: '/usr', transport: '9p', contents: 'fixed' },
    { kind: 'share', tag: 'nixstore', hostPath: '/nix/store', transport: '9p', contents: 'append-only' },
    { kind: 'share', tag: 'lbconfig', hostPath: paths.guestShare, transport: '9p' },
  ]);
  assert.deepEqual(devicesOf(plan.devices, 'console'), [{ kind: 'console', log: paths.consoleLog }]);
  assert.deepEqual(devicesOf(plan.devices, 'disk'), [{ kind: 'disk', path: paths.disk, ephemeral: false }]);
  assert.equal(plan.processLog, paths.processLog);
  const virtiofs = launchPlan({ ...inputs, transport: 'virtiofs', ephemeral: true });
  assert.ok(devicesOf(virtiofs.devices, 'share').every((s) => s.transport === 'virtiofs'));
  assert.equal(devicesOf(virtiofs.devices, 'disk')[0]?.ephemeral, true);
});

test('SSH over a forwarded port is a forward on the NIC; over a vsock socket it is a vsock device and the NIC forwards nothing', () => {
  const forwarded = launchPlan(inputs);
  assert.deepEqual(devicesOf(forwarded.devices, 'net'), [{ kind: 'net', forwards: [{ host: inputs.ssh, guestPort: 22 }] }]);
  assert.deepEqual(devicesOf(forwarded.devices, 'vsock'), []);
  const vsock = launchPlan({ ...inputs, ssh: { kind: 'unix', path: paths.guestSshSocket } });
  assert.deepEqual(devicesOf(vsock.devices, 'net'), [{ kind: 'net', forwards: [] }]);
  assert.deepEqual(devicesOf(vsock.devices, 'vsock'), [{ kind: 'vsock', guestPort: 22, socket: '/r/plan/guest-ssh.sock' }]);
});

test('the kernel arguments tell the guest the share transport and its network; a DHCP network names no address', () => {
  assert.deepEqual(launchPlan(inputs).kernelArgs, [
    'panic=-1', 'quiet', 'lb.shares=9p', 'lb.address=10.0.2.15/24', 'lb.gateway=10.0.2.2', 'lb.dns=10.0.2.3', 'lb.hostnet=10.0.2.0/24',
  ]);
  const dhcp = launchPlan({ ...inputs, transport: 'virtiofs', network: { kind: 'dhcp', dns: '192.168.64.1', hostNet: '192.168.64.1/32' } });
  assert.deepEqual(dhcp.kernelArgs.slice(2), ['lb.shares=virtiofs', 'lb.address=dhcp', 'lb.dns=192.168.64.1', 'lb.hostnet=192.168.64.1/32']);
});

test('SSH over vsock tells the guest which vsock port to relay to sshd', () => {
  const vsock = launchPlan({ ...inputs, ssh: { kind: 'unix', path: paths.guestSshSocket } });
  assert.equal(vsock.kernelArgs.at(-1), 'lb.sshvsock=22');
  assert.ok(!launchPlan(inputs).kernelArgs.some((arg) => arg.startsWith('lb.sshvsock=')));
});

test('Rosetta: the hypervisor\'s own is a rosetta device; a stand-in directory is a share under the same tag; none without it', () => {
  assert.deepEqual(devicesOf(launchPlan({ ...inputs, rosetta: {} }).devices, 'rosetta'), [{ kind: 'rosetta', tag: 'rosetta' }]);
  const standIn = launchPlan({ ...inputs, rosetta: { hostPath: '/tmp/stand-in' } });
  assert.deepEqual(devicesOf(standIn.devices, 'rosetta'), []);
  assert.deepEqual(devicesOf(standIn.devices, 'share').at(-1), { kind: 'share', tag: 'rosetta', hostPath: '/tmp/stand-in', transport: '9p' });
  assert.equal(launchPlan(inputs).devices.filter((d) => d.kind === 'rosetta' || (d.kind === 'share' && d.tag === 'rosetta')).length, 0);
});
