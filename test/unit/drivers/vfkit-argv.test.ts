/**
 * The vfkit command line as a table, each row also parsed by vfkit's grammar (test/support/
 * vfkit-grammar.ts): what the driver writes is what vfkit reads back.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bootloaderOption, deviceOption, namesRestSocket, stableMac, vfkitArgv, type VfkitConfig, type VfkitDevice } from '../../../src/drivers/vfkit/argv.js';
import { UserError } from '../../../src/errors.js';
import { deviceOption as parsedOption, parseDevice, parseVfkitArgs, splitQuoted } from '../../support/vfkit-grammar.js';

const run = '/var/folders/xy/T/linux-builder-501/default';
const state = '/Users/ada/Library/Application Support/linux-builder/default';

function config(overrides: Partial<VfkitConfig> = {}): VfkitConfig {
  return {
    cpus: 4,
    memoryMiB: 4096,
    kernel: '/Users/ada/Library/Caches/linux-builder/kernels/Image-6.12',
    initrd: '/Users/ada/Library/Caches/linux-builder/images/initrd-abc.cpio',
    kernelArgs: ['panic=-1', 'quiet'],
    devices: [
      { kind: 'virtio-serial', logFile: `${state}/console.log` },
      { kind: 'virtio-fs', sharedDir: '/nix/store', mountTag: 'nixstore' },
      { kind: 'virtio-fs', sharedDir: `${state}/guest-share`, mountTag: 'lbconfig' },
      { kind: 'rosetta', mountTag: 'rosetta' },
      { kind: 'virtio-blk', path: `${state}/disk.img` },
      { kind: 'virtio-vsock', port: 22, socket: `${run}/ssh.sock`, direction: 'connect' },
      { kind: 'virtio-net', mac: '02:11:22:33:44:55' },
      { kind: 'virtio-rng' },
    ],
    restSocket: `${run}/vfkit.sock`,
    pidFile: `${run}/vm.pid`,
    ...overrides,
  };
}

test('the whole command line: flags, a linux bootloader with a quoted cmdline, every device, REST on a unix socket, a pid file', () => {
  const argv = vfkitArgv(config());
  assert.deepEqual(argv, [
    'vfkit',
    '--cpus', '4',
    '--memory', '4096',
    '--bootloader', 'linux,kernel=/Users/ada/Library/Caches/linux-builder/kernels/Image-6.12,initrd=/Users/ada/Library/Caches/linux-builder/images/initrd-abc.cpio,cmdline="console=hvc0 panic=-1 quiet"',
    '--device', `virtio-serial,logFilePath=${state}/console.log`,
    '--device', 'virtio-fs,sharedDir=/nix/store,mountTag=nixstore',
    '--device', `virtio-fs,sharedDir=${state}/guest-share,mountTag=lbconfig`,
    '--device', 'rosetta,mountTag=rosetta',
    '--device', `virtio-blk,path=${state}/disk.img`,
    '--device', `virtio-vsock,port=22,socketURL=${run}/ssh.sock,connect`,
    '--device', 'virtio-net,nat,mac=02:11:22:33:44:55',
    '--device', 'virtio-rng',
    '--restful-uri', `unix://${run}/vfkit.sock`,
    '--pidfile', `${run}/vm.pid`,
  ]);
});

test("vfkit's grammar reads the command line back as it was meant", () => {
  const parsed = parseVfkitArgs(vfkitArgv(config()).slice(1));
  assert.equal(parsed.cpus, 4);
  assert.equal(parsed.memoryMiB, 4096);
  assert.deepEqual(parsed.bootloader, {
    kind: 'linux',
    kernel: '/Users/ada/Library/Caches/linux-builder/kernels/Image-6.12',
    initrd: '/Users/ada/Library/Caches/linux-builder/images/initrd-abc.cpio',
    cmdline: 'console=hvc0 panic=-1 quiet',
  });
  assert.deepEqual(parsed.devices.map((d) => d.kind), ['virtio-serial', 'virtio-fs', 'virtio-fs', 'rosetta', 'virtio-blk', 'virtio-vsock', 'virtio-net', 'virtio-rng']);
  const share = parsed.devices[2];
  assert.ok(share);
  assert.equal(parsedOption(share, 'sharedDir'), `${state}/guest-share`, 'a space in a path survives: argv is not a shell line');
  assert.equal(parsed.restSocket, `${run}/vfkit.sock`);
  assert.equal(parsed.pidFile, `${run}/vm.pid`);
});

const devices: ReadonlyArray<{ device: VfkitDevice; option: string }> = [
  { device: { kind: 'virtio-fs', sharedDir: '/nix/store', mountTag: 'nixstore' }, option: 'virtio-fs,sharedDir=/nix/store,mountTag=nixstore' },
  { device: { kind: 'rosetta', mountTag: 'rosetta' }, option: 'rosetta,mountTag=rosetta' },
  { device: { kind: 'virtio-blk', path: '/d/disk.img' }, option: 'virtio-blk,path=/d/disk.img' },
  { device: { kind: 'virtio-vsock', port: 22, socket: '/r/ssh.sock', direction: 'connect' }, option: 'virtio-vsock,port=22,socketURL=/r/ssh.sock,connect' },
  { device: { kind: 'virtio-vsock', port: 1025, socket: '/r/ready.sock', direction: 'listen' }, option: 'virtio-vsock,port=1025,socketURL=/r/ready.sock,listen' },
  { device: { kind: 'virtio-serial', logFile: '/s/console.log' }, option: 'virtio-serial,logFilePath=/s/console.log' },
  { device: { kind: 'virtio-rng' }, option: 'virtio-rng' },
  { device: { kind: 'virtio-net', mac: '02:00:00:00:00:01' }, option: 'virtio-net,nat,mac=02:00:00:00:00:01' },
];

for (const { device, option } of devices) {
  test(`device ${device.kind}${device.kind === 'virtio-vsock' ? ` (${device.direction})` : ''}: ${option}, which vfkit parses`, () => {
    assert.equal(deviceOption(device), option);
    assert.equal(parseDevice(option).kind, device.kind);
  });
}

const refused: ReadonlyArray<{ name: string; config: Partial<VfkitConfig>; message: RegExp; hint: RegExp }> = [
  {
    name: 'a shared directory with a comma',
    config: { devices: [{ kind: 'virtio-fs', sharedDir: '/Users/ada/a,b', mountTag: 'x' }] },
    message: /^vfkit cannot take the shared directory "\/Users\/ada\/a,b": it contains a comma$/,
    hint: /vfkit splits its options on commas and has no way to escape one/,
  },
  {
    name: 'a disk image with a comma',
    config: { devices: [{ kind: 'virtio-blk', path: '/x/my,disk.img' }] },
    message: /disk image "\/x\/my,disk.img": it contains a comma/,
    hint: /move the disk image to a path without a comma/,
  },
  {
    name: 'a console log with a comma',
    config: { devices: [{ kind: 'virtio-serial', logFile: '/x,y/console.log' }] },
    message: /console log .*comma/,
    hint: /commas/,
  },
  {
    name: 'a kernel with a comma',
    config: { kernel: '/cache/Image,6.12' },
    message: /vfkit cannot take the kernel "\/cache\/Image,6.12": it contains a comma/,
    hint: /commas/,
  },
  {
    name: 'an initrd with a double quote',
    config: { initrd: '/cache/"initrd"' },
    message: /initrd .*double quote/,
    hint: /plain path/,
  },
  {
    name: 'a kernel command line with a double quote',
    config: { kernelArgs: ['init="/x y"'] },
    message: /cannot pass the kernel command line .*double quote/,
    hint: /cannot escape one/,
  },
  {
    name: 'a REST socket path over 103 bytes',
    config: { restSocket: `/${'r'.repeat(99)}/v.sock` },
    message: /socket path is 107 bytes, over the 103-byte limit of unix sockets/,
    hint: /set XDG_RUNTIME_DIR to a shorter directory, or use a shorter --name/,
  },
  {
    name: 'a vsock socket path over 103 bytes',
    config: { devices: [{ kind: 'virtio-vsock', port: 22, socket: `/${'s'.repeat(103)}`, direction: 'connect' }] },
    message: /socket path is 104 bytes/,
    hint: /XDG_RUNTIME_DIR/,
  },
  {
    name: 'a REST socket path with a space (URL parsing would change it)',
    config: { restSocket: '/Users/ada/Library/Application Support/vfkit.sock' },
    message: /vfkit cannot use the REST socket .*URL parsing changes/,
    hint: /XDG_RUNTIME_DIR/,
  },
  {
    name: 'a vsock socket path with a percent sign',
    config: { devices: [{ kind: 'virtio-vsock', port: 22, socket: '/tmp/a%20b.sock', direction: 'connect' }] },
    message: /vfkit cannot use the vsock socket/,
    hint: /XDG_RUNTIME_DIR/,
  },
  {
    name: 'a relative disk path',
    config: { devices: [{ kind: 'virtio-blk', path: 'disk.img' }] },
    message: /the disk image must be an absolute path/,
    hint: /^$/,
  },
  {
    name: 'a mount tag of 36 bytes',
    config: { devices: [{ kind: 'virtio-fs', sharedDir: '/x', mountTag: 't'.repeat(36) }] },
    message: /bad virtio-fs mount tag/,
    hint: /1 to 35/,
  },
  {
    name: 'two consoles',
    config: { devices: [{ kind: 'virtio-serial', logFile: '/a' }, { kind: 'virtio-serial', logFile: '/b' }] },
    message: /one virtio-serial console at most/,
    hint: /^$/,
  },
];

for (const row of refused) {
  test(`refused with a clear error: ${row.name}`, () => {
    assert.throws(
      () => vfkitArgv(config(row.config)),
      (error: unknown) => {
        assert.ok(error instanceof UserError, String(error));
        assert.equal(error.exitCode, 2);
        assert.match(error.message, row.message);
        assert.match(error.hint ?? '', row.hint);
        return true;
      },
    );
  });
}

test('the grammar agrees: an unescaped comma in a device path splits it into an unknown option, and a quoted bootloader value keeps its commas', () => {
  assert.throws(() => parseDevice('virtio-fs,sharedDir=/a,b,mountTag=x'), /unknown option for virtio-fs devices: b/);
  assert.deepEqual(splitQuoted('linux,kernel=/k,cmdline="a,b c"'), ['linux', 'kernel=/k', 'cmdline="a,b c"']);
  assert.throws(() => splitQuoted('linux,cmdline="a'), /mismatched "/);
});

test('console=hvc0 is the console whatever the arguments say', () => {
  assert.equal(bootloaderOption({ kernel: '/k', initrd: '/i', kernelArgs: ['console=ttyAMA0', 'quiet'] }), 'linux,kernel=/k,initrd=/i,cmdline="console=hvc0 quiet"');
});

test('the REST socket in a command line names the VM: the exact path, not a prefix of another', () => {
  const line = vfkitArgv(config()).join(' ');
  assert.equal(namesRestSocket(line, `${run}/vfkit.sock`), true);
  assert.equal(namesRestSocket(line, `${run}/vfkit.so`), false);
  assert.equal(namesRestSocket(line, '/elsewhere/vfkit.sock'), false);
  assert.equal(namesRestSocket(`vfkit --restful-uri unix://${run}/vfkit.sock`, `${run}/vfkit.sock`), true, 'at the end of the line');
});

test('the MAC address is locally administered, unicast and stable per instance', () => {
  const mac = stableMac('default');
  assert.match(mac, /^02(:[0-9a-f]{2}){5}$/);
  assert.equal(stableMac('default'), mac);
  assert.notEqual(stableMac('other'), mac);
  assert.equal(parsedOption(parseDevice(`virtio-net,nat,mac=${mac}`), 'mac'), mac);
});
