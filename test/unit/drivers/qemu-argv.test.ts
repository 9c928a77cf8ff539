import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Device, LaunchPlan } from '../../../src/drivers/driver.js';
import { bootsPowerKeyMachine, optionValue, qemuArgv, type QemuHost } from '../../../src/drivers/qemu/argv.js';

/** A plan in the old flat words, turned into devices and QEMU's own facts. */
interface Row extends Partial<Omit<LaunchPlan, 'devices'>> {
  shares?: { tag: string; hostPath: string }[];
  disk?: { path: string; ephemeral: boolean };
  sshPort?: number;
  tscKhz?: number | undefined;
  firmware?: string;
  qmpSocket?: string;
  devices?: Device[];
}

function build(row: Row = {}): [LaunchPlan, QemuHost] {
  const { shares, disk, sshPort, tscKhz, firmware, qmpSocket, devices, ...plan } = row;
  const defaultShares = [
    { tag: 'hostusr', hostPath: '/usr' },
    { tag: 'nixstore', hostPath: '/nix/store' },
  ];
  return [
    {
      name: 'default',
      hostArch: 'x86_64',
      guestArch: 'x86_64',
      accel: 'tcg',
      cores: 2,
      memoryMiB: 1024,
      kernel: { path: '/cache/kernels/vmlinux-abc', format: 'vmlinux-pvh' },
      initrd: '/cache/images/initrd.cpio.gz',
      kernelArgs: ['quiet'],
      devices: devices ?? [
        { kind: 'console', log: '/state/default/console.log' },
        ...(shares ?? defaultShares).map((share) => ({ kind: 'share', transport: '9p', ...share }) as const),
        ...(disk ? [{ kind: 'disk', ...disk } as const] : []),
        { kind: 'net', forwards: [{ host: { kind: 'tcp', host: '127.0.0.1', port: sshPort ?? 31022 }, guestPort: 22 }] },
        { kind: 'rng' },
      ],
      processLog: '/state/default/vm.log',
      ...plan,
    },
    {
      files: { qmpSocket: qmpSocket ?? '/run/lb/default/qmp.sock', pidFile: '/run/lb/default/vm.pid' },
      tscKhz: 'tscKhz' in row ? tscKhz : 2596132,
      firmware,
    },
  ];
}

const argvOf = (row: Row = {}): string[] => qemuArgv(...build(row));

/** The value following a flag, e.g. option(argv, '-machine'). */
function option(argv: readonly string[], flag: string): string | undefined {
  const at = argv.indexOf(flag);
  return at < 0 ? undefined : argv[at + 1];
}

function options(argv: readonly string[], flag: string): string[] {
  return argv.flatMap((arg, i) => (arg === flag && argv[i + 1] !== undefined ? [argv[i + 1] as string] : []));
}

test('microvm under TCG pins the TSC and drops the NIC ROM', () => {
  const argv = argvOf();
  assert.equal(argv[0], 'qemu-system-x86_64');
  assert.equal(option(argv, '-machine'), 'microvm,acpi=on,rtc=on');
  assert.match(option(argv, '-append') ?? '', /(^| )tsc_early_khz=2596132( |$)/);
  const devices = options(argv, '-device');
  assert.ok(devices.includes('virtio-net-device,netdev=n0'), devices.join(' | '));
  assert.ok(!devices.some((d) => d.startsWith('virtio-net-pci')));
});

const table: ReadonlyArray<{ name: string; plan: Row; check: (argv: string[]) => void }> = [
  {
    name: 'x86_64 boots the PVH vmlinux on microvm with virtio-mmio devices and ttyS0',
    plan: {},
    check: (argv) => {
      assert.equal(option(argv, '-kernel'), '/cache/kernels/vmlinux-abc');
      assert.deepEqual(
        options(argv, '-device').map((d) => d.split(',')[0]),
        ['virtio-9p-device', 'virtio-9p-device', 'virtio-net-device', 'virtio-rng-device'],
      );
      assert.match(option(argv, '-append') ?? '', /^console=ttyS0 /);
    },
  },
  {
    name: 'a bzImage without PVH note also boots on microvm (qboot loads it)',
    plan: { kernel: { path: '/boot/vmlinuz-6.1.0-56-amd64', format: 'bzImage' } },
    check: (argv) => {
      assert.equal(option(argv, '-machine'), 'microvm,acpi=on,rtc=on');
      assert.equal(option(argv, '-kernel'), '/boot/vmlinuz-6.1.0-56-amd64');
      assert.match(option(argv, '-append') ?? '', /tsc_early_khz=/);
    },
  },
  {
    name: 'no TSC frequency known: no tsc_early_khz',
    plan: { tscKhz: undefined },
    check: (argv) => assert.doesNotMatch(option(argv, '-append') ?? '', /tsc_early_khz/),
  },
  {
    name: 'kvm uses -cpu host',
    plan: { accel: 'kvm' },
    check: (argv) => {
      assert.equal(option(argv, '-accel'), 'kvm');
      assert.equal(option(argv, '-cpu'), 'host');
    },
  },
  {
    name: 'tcg uses -cpu max without ERMS, and the kernel without REP_GOOD: TCG runs rep string instructions slowly',
    plan: { accel: 'tcg' },
    check: (argv) => {
      assert.equal(option(argv, '-accel'), 'tcg');
      assert.equal(option(argv, '-cpu'), 'max,-erms');
      assert.match(option(argv, '-append') ?? '', /(^| )clearcpuid=rep_good( |$)/);
    },
  },
  {
    name: 'kvm keeps the string instructions: no clearcpuid',
    plan: { accel: 'kvm' },
    check: (argv) => assert.doesNotMatch(option(argv, '-append') ?? '', /clearcpuid/),
  },
  {
    name: 'aarch64 uses virt, ttyAMA0, PCI devices and a NIC without ROM, no TSC pin',
    plan: { hostArch: 'aarch64', guestArch: 'aarch64', kernel: { path: '/boot/vmlinuz-6.1.0-56-arm64', format: 'image' } },
    check: (argv) => {
      assert.equal(argv[0], 'qemu-system-aarch64');
      assert.equal(option(argv, '-machine'), 'virt');
      assert.match(option(argv, '-append') ?? '', /^console=ttyAMA0 /);
      assert.doesNotMatch(option(argv, '-append') ?? '', /tsc_early_khz|clearcpuid/);
      const devices = options(argv, '-device');
      assert.ok(devices.includes('virtio-net-pci,netdev=n0,romfile='), devices.join(' | '));
      assert.ok(devices.includes('virtio-rng-pci'));
      assert.ok(devices.every((d) => !d.includes('-device,')));
    },
  },
  {
    name: 'aarch64 under kvm uses gic-version=max and -cpu host',
    plan: { hostArch: 'aarch64', guestArch: 'aarch64', accel: 'kvm', kernel: { path: '/k', format: 'image' } },
    check: (argv) => {
      assert.equal(option(argv, '-machine'), 'virt,gic-version=max');
      assert.equal(option(argv, '-cpu'), 'host');
    },
  },
  {
    name: 'hvf uses -cpu host',
    plan: { hostArch: 'aarch64', guestArch: 'aarch64', accel: 'hvf', kernel: { path: '/k', format: 'image' } },
    check: (argv) => {
      assert.equal(option(argv, '-accel'), 'hvf');
      assert.equal(option(argv, '-cpu'), 'host');
    },
  },
  {
    name: 'microvm runs the firmware given (qboot), before the PVH kernel; without one, QEMU\'s default',
    plan: { firmware: '/usr/share/qemu/qboot.rom' },
    check: (argv) => {
      assert.equal(option(argv, '-bios'), '/usr/share/qemu/qboot.rom');
      assert.ok(argv.indexOf('-bios') < argv.indexOf('-kernel'));
    },
  },
  {
    name: 'hostfwd is bound to 127.0.0.1, never to every interface; no IPv6, whose host alias is the host\'s ::1',
    plan: { sshPort: 40022 },
    check: (argv) => {
      assert.equal(option(argv, '-netdev'), 'user,id=n0,ipv6=off,hostfwd=tcp:127.0.0.1:40022-:22');
      assert.ok(!argv.join(' ').includes('0.0.0.0'));
    },
  },
  {
    name: 'every share is read-only 9p with its tag',
    plan: {},
    check: (argv) => {
      const fsdevs = options(argv, '-fsdev');
      assert.equal(fsdevs.length, 2);
      assert.ok(fsdevs.every((f) => f.startsWith('local,') && f.endsWith(',security_model=none,readonly=on')), fsdevs.join(' | '));
      assert.ok(fsdevs[0]?.includes('path=/usr,'));
      const ninep = options(argv, '-device').filter((d) => d.startsWith('virtio-9p'));
      assert.deepEqual(ninep, ['virtio-9p-device,fsdev=fs0,mount_tag=hostusr', 'virtio-9p-device,fsdev=fs1,mount_tag=nixstore']);
    },
  },
  {
    name: 'no shares, no 9p devices',
    plan: { shares: [] },
    check: (argv) => {
      assert.equal(options(argv, '-fsdev').length, 0);
      assert.ok(!argv.some((a) => a.startsWith('virtio-9p')));
    },
  },
  {
    name: 'a comma in a path is doubled inside option lists',
    plan: { shares: [{ tag: 'odd', hostPath: '/srv/a,b' }], qmpSocket: '/run/x,y/qmp.sock' },
    check: (argv) => {
      assert.equal(options(argv, '-fsdev')[0], 'local,id=fs0,path=/srv/a,,b,security_model=none,readonly=on');
      assert.equal(option(argv, '-qmp'), 'unix:/run/x,,y/qmp.sock,server=on,wait=off');
    },
  },
  {
    name: 'the fixed flags: no defaults, no display, no reboot, console file, QMP, pidfile, sizes',
    plan: { cores: 3, memoryMiB: 2048 },
    check: (argv) => {
      for (const flag of ['-nodefaults', '-no-user-config', '-no-reboot']) assert.ok(argv.includes(flag), flag);
      assert.equal(option(argv, '-display'), 'none');
      assert.equal(option(argv, '-serial'), 'file:/state/default/console.log');
      assert.equal(option(argv, '-qmp'), 'unix:/run/lb/default/qmp.sock,server=on,wait=off');
      assert.equal(option(argv, '-pidfile'), '/run/lb/default/vm.pid');
      assert.equal(option(argv, '-initrd'), '/cache/images/initrd.cpio.gz');
      assert.equal(option(argv, '-smp'), '3');
      assert.equal(option(argv, '-m'), '2048M');
      assert.match(option(argv, '-name') ?? '', /default/);
    },
  },
  {
    name: 'the plan kernel args come after the console; panic=-1 added so -no-reboot ends a panicked VM',
    plan: { kernelArgs: ['quiet', 'lb.debug=1'] },
    check: (argv) => assert.equal(option(argv, '-append'), 'console=ttyS0 quiet lb.debug=1 panic=-1 clearcpuid=rep_good tsc_early_khz=2596132'),
  },
  {
    name: "the plan's own panic=, clearcpuid= and tsc_early_khz= are kept, not doubled",
    plan: { kernelArgs: ['panic=5', 'clearcpuid=erms', 'tsc_early_khz=1000000'] },
    check: (argv) => assert.equal(option(argv, '-append'), 'console=ttyS0 panic=5 clearcpuid=erms tsc_early_khz=1000000'),
  },
  {
    name: 'the instance disk on microvm: a raw drive with discard=unmap behind virtio-blk-device',
    plan: { disk: { path: '/state/default/disk.img', ephemeral: false } },
    check: (argv) => {
      assert.equal(option(argv, '-drive'), 'file=/state/default/disk.img,if=none,id=disk0,format=raw,cache=writeback,discard=unmap');
      assert.ok(options(argv, '-device').includes('virtio-blk-device,drive=disk0'));
    },
  },
  {
    name: 'the instance disk on aarch64 virt is a PCI device; an ephemeral disk skips flushes',
    plan: { hostArch: 'aarch64', guestArch: 'aarch64', kernel: { path: '/k', format: 'image' }, disk: { path: '/s/a,b/disk.img', ephemeral: true } },
    check: (argv) => {
      assert.equal(option(argv, '-drive'), 'file=/s/a,,b/disk.img,if=none,id=disk0,format=raw,cache=unsafe,discard=unmap');
      assert.ok(options(argv, '-device').includes('virtio-blk-pci,drive=disk0'));
    },
  },
  {
    name: 'an aarch64 guest on an x86_64 host: qemu-system-aarch64 virt under TCG, cheap pointer auth, ttyAMA0, PCI devices',
    plan: { guestArch: 'aarch64', kernel: { path: '/cache/kernels/Image-abc', format: 'image' } },
    check: (argv) => {
      assert.equal(argv[0], 'qemu-system-aarch64');
      assert.equal(option(argv, '-machine'), 'virt');
      assert.equal(option(argv, '-accel'), 'tcg');
      assert.equal(option(argv, '-cpu'), 'max,pauth-impdef=on');
      assert.equal(option(argv, '-kernel'), '/cache/kernels/Image-abc');
      assert.match(option(argv, '-append') ?? '', /^console=ttyAMA0 /);
      assert.deepEqual(
        options(argv, '-device').map((d) => d.split(',')[0]),
        ['virtio-9p-pci', 'virtio-9p-pci', 'virtio-net-pci', 'virtio-rng-pci'],
      );
      assert.ok(options(argv, '-device').includes('virtio-net-pci,netdev=n0,romfile='), 'no iPXE ROM');
    },
  },
  {
    name: 'an aarch64 guest never gets the x86 TSC pin, even with a host TSC frequency in the plan',
    plan: { guestArch: 'aarch64', tscKhz: 2596132, kernel: { path: '/k', format: 'image' } },
    check: (argv) => {
      assert.doesNotMatch(option(argv, '-append') ?? '', /tsc_early_khz/);
      assert.ok(!argv.some((a) => a.startsWith('microvm')));
    },
  },
  {
    name: 'an aarch64 guest with a disk on an x86_64 host: a PCI block device',
    plan: { guestArch: 'aarch64', kernel: { path: '/k', format: 'image' }, disk: { path: '/s/disk.img', ephemeral: false } },
    check: (argv) => assert.ok(options(argv, '-device').includes('virtio-blk-pci,drive=disk0')),
  },
  {
    name: 'an aarch64 guest on an aarch64 host under TCG keeps -cpu max',
    plan: { hostArch: 'aarch64', guestArch: 'aarch64', kernel: { path: '/k', format: 'image' } },
    check: (argv) => assert.equal(option(argv, '-cpu'), 'max'),
  },
  {
    name: 'no disk, no drive and no block device',
    plan: {},
    check: (argv) => {
      assert.equal(option(argv, '-drive'), undefined);
      assert.ok(!options(argv, '-device').some((d) => d.startsWith('virtio-blk')));
    },
  },
];

for (const row of table) {
  test(row.name, () => row.check(argvOf(row.plan)));
}

test('qemuArgv is pure: same plan, same argv, plan untouched', () => {
  const [p, host] = build();
  const before = JSON.stringify(p);
  assert.deepEqual(qemuArgv(p, host), qemuArgv(p, host));
  assert.equal(JSON.stringify(p), before);
});

test('devices render in plan order with ids counted per kind; several forwards on one NIC', () => {
  const argv = argvOf({
    devices: [
      { kind: 'share', tag: 'a', hostPath: '/a', transport: '9p' },
      { kind: 'console', log: '/c.log' },
      { kind: 'share', tag: 'b', hostPath: '/b', transport: '9p' },
      { kind: 'net', forwards: [{ host: { kind: 'tcp', host: '127.0.0.1', port: 4022 }, guestPort: 22 }, { host: { kind: 'tcp', host: '127.0.0.1', port: 4080 }, guestPort: 80 }] },
    ],
  });
  assert.deepEqual(options(argv, '-device'), ['virtio-9p-device,fsdev=fs0,mount_tag=a', 'virtio-9p-device,fsdev=fs1,mount_tag=b', 'virtio-net-device,netdev=n0']);
  assert.equal(option(argv, '-netdev'), 'user,id=n0,ipv6=off,hostfwd=tcp:127.0.0.1:4022-:22,hostfwd=tcp:127.0.0.1:4080-:80');
  assert.equal(option(argv, '-serial'), 'file:/c.log');
  assert.equal(options(argv, '-rng').length, 0);
});

test('no console device: no -serial; devices QEMU does not have are refused, never dropped', () => {
  assert.equal(option(argvOf({ devices: [] }), '-serial'), undefined);
  for (const device of [
    { kind: 'vsock', guestPort: 22, socket: '/run/lb/ssh.sock' },
    { kind: 'rosetta', tag: 'rosetta' },
  ] as const) {
    assert.throws(() => argvOf({ devices: [device] }), new RegExp(`no ${device.kind} device`));
  }
});

test('optionValue doubles commas only', () => {
  assert.equal(optionValue('/a,b,,c'), '/a,,b,,,,c');
  assert.equal(optionValue('/plain/path'), '/plain/path');
});

test('virtio-fs shares: a vhost-user-fs device per share on its virtiofsd socket, guest memory a shared memfd, modern virtio-mmio on microvm', () => {
  const shares: Device[] = [
    { kind: 'share', tag: 'hostusr', hostPath: '/usr', transport: 'virtiofs' },
    { kind: 'share', tag: 'nixstore', hostPath: '/nix/store', transport: 'virtiofs' },
  ];
  const [plan, host] = build({ devices: shares, memoryMiB: 2048 });
  const argv = qemuArgv(plan, { ...host, shareSockets: ['/run/lb/x/fs0.sock', '/run/a,b/fs1.sock'] });
  assert.deepEqual(options(argv, '-chardev'), ['socket,id=vfs0,path=/run/lb/x/fs0.sock', 'socket,id=vfs1,path=/run/a,,b/fs1.sock']);
  assert.deepEqual(options(argv, '-device'), [
    'vhost-user-fs-device,chardev=vfs0,tag=hostusr,queue-size=1024',
    'vhost-user-fs-device,chardev=vfs1,tag=nixstore,queue-size=1024',
  ]);
  assert.equal(option(argv, '-object'), 'memory-backend-memfd,id=mem,size=2048M,share=on');
  assert.equal(option(argv, '-machine'), 'microvm,acpi=on,rtc=on,memory-backend=mem');
  assert.equal(option(argv, '-global'), 'virtio-mmio.force-legacy=false');
  assert.equal(option(argv, '-m'), '2048M');
  assert.equal(options(argv, '-fsdev').length, 0);
});

test('virtio-fs on aarch64 virt is PCI (vhost-user-fs-pci), no virtio-mmio global; 9p beside it keeps its own ids', () => {
  const [plan, host] = build({
    guestArch: 'aarch64',
    kernel: { path: '/k', format: 'image' },
    devices: [
      { kind: 'share', tag: 'nixstore', hostPath: '/nix/store', transport: 'virtiofs' },
      { kind: 'share', tag: 'lbconfig', hostPath: '/state/guest-share', transport: '9p' },
    ],
  });
  const argv = qemuArgv(plan, { ...host, shareSockets: ['/run/lb/x/fs0.sock'] });
  assert.deepEqual(options(argv, '-device'), ['vhost-user-fs-pci,chardev=vfs0,tag=nixstore,queue-size=1024', 'virtio-9p-pci,fsdev=fs0,mount_tag=lbconfig']);
  assert.equal(option(argv, '-machine'), 'virt,memory-backend=mem');
  assert.equal(option(argv, '-global'), undefined);
  assert.throws(() => qemuArgv(plan, host), /no virtiofsd socket for share nixstore/);
});

test('9p shares only: private guest memory, legacy virtio-mmio as before', () => {
  const argv = argvOf();
  assert.equal(option(argv, '-object'), undefined);
  assert.equal(option(argv, '-global'), undefined);
  assert.equal(option(argv, '-machine'), 'microvm,acpi=on,rtc=on');
});

test('the power key: aarch64 virt has one its guest listens to (system_powerdown presses it), microvm not', () => {
  const commandLine = (row: Row): string => argvOf(row).join(' ');
  assert.equal(bootsPowerKeyMachine(commandLine({ guestArch: 'aarch64', kernel: { path: '/k/Image', format: 'image' } })), true);
  assert.equal(bootsPowerKeyMachine(commandLine({ guestArch: 'aarch64', hostArch: 'aarch64', accel: 'kvm', kernel: { path: '/k/Image', format: 'image' } })), true, 'virt,gic-version=max');
  assert.equal(bootsPowerKeyMachine(commandLine({})), false);
  assert.equal(bootsPowerKeyMachine('qemu-system-aarch64 -machine virtual'), false);
});
