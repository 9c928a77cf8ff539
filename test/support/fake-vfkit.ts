/**
 * A fake vfkit for tests on hosts where vfkit cannot run: it checks its argv against vfkit's
 * grammar (and that the files vfkit opens exist), writes its pid file, appends to the console log,
 * serves the REST API on its unix socket and relays the vsock socket to a TCP port, and exits on
 * Stop, HardStop or SIGTERM, removing its sockets as vfkit does.
 *
 * Environment: FAKE_VFKIT_VSOCK_TARGET=host:port (where "the guest's" vsock port is; absent: connections
 * are closed), FAKE_VFKIT_IGNORE_STOP=1 (the guest ignores the power button: only HardStop ends it),
 * FAKE_VFKIT_STOP_MS (how long the guest takes to power off after Stop; default 100),
 * FAKE_VFKIT_VERSION (what --version says; default v0.6.4), FAKE_VFKIT_GUEST=ssh (a stand-in guest:
 * an SSH server on the vsock socket with the host key and authorized key of the config share,
 * running commands on this host, "poweroff" powering the VM off; the console gets the ready line),
 * FAKE_VFKIT_GUEST=qemu (a real guest: the VM the command line describes, run by QEMU with the
 * nearest devices and vhost-device-vsock at FAKE_VFKIT_VHOST_DEVICE_VSOCK; see vfkit-qemu-guest.ts).
 */
import { appendFileSync, existsSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { stubGuest } from './stub-guest.js';
import { startQemuGuest, type QemuGuest } from './vfkit-qemu-guest.js';
import { deviceOption, parseVfkitArgs, VfkitUsageError, type ParsedVfkit } from './vfkit-grammar.js';

function usage(message: string): never {
  process.stderr.write(`Error: ${message}\n`);
  process.exit(1);
}

if (process.argv[2] === '--version') {
  process.stdout.write(`vfkit version: ${process.env.FAKE_VFKIT_VERSION ?? 'v0.6.4'}\n`);
  process.exit(0);
}

let vm: ParsedVfkit;
try {
  vm = parseVfkitArgs(process.argv.slice(2));
} catch (error) {
  usage(error instanceof VfkitUsageError ? error.message : String(error));
}

// vfkit opens these when it builds the VM configuration
const mustExist: string[] = [vm.bootloader.kernel, vm.bootloader.initrd];
for (const device of vm.devices) {
  const path = deviceOption(device, device.kind === 'virtio-fs' ? 'sharedDir' : 'path');
  if ((device.kind === 'virtio-fs' || device.kind === 'virtio-blk') && path !== undefined) mustExist.push(path);
}
for (const path of mustExist) if (!existsSync(path)) usage(`failed to open file ${path}: no such file or directory`);
for (const device of vm.devices.filter((d) => d.kind === 'virtio-fs')) {
  const dir = deviceOption(device, 'sharedDir') ?? '';
  if (!statSync(dir).isDirectory()) usage(`${dir} is not a directory`);
}
if (vm.devices.some((d) => d.kind === 'rosetta') && process.env.FAKE_VFKIT_NO_ROSETTA === '1') {
  usage('rosetta is not installed');
}

if (vm.pidFile !== undefined) writeFileSync(vm.pidFile, `${process.pid}`, { mode: 0o600 });
const serial = vm.devices.find((d) => d.kind === 'virtio-serial');
const consoleLog = serial === undefined ? undefined : deviceOption(serial, 'logFilePath');
const say = (line: string): void => {
  if (consoleLog !== undefined) appendFileSync(consoleLog, `${line}\n`);
};

let state = 'VirtualMachineStateRunning';
const servers: Server[] = [];
const sockets: string[] = [];

let guest: QemuGuest | undefined;

function exit(code: number): never {
  guest?.cleanup();
  for (const server of servers) server.close();
  for (const socket of sockets) rmSync(socket, { force: true });
  process.stdout.write('virtual machine stopped\n');
  process.exit(code);
}

function powerOff(afterMs: number): void {
  state = 'VirtualMachineStateStopping';
  if (guest !== undefined) {
    // the real guest decides when it is off: QEMU exits then
    guest.powerButton();
    return;
  }
  setTimeout(() => {
    state = 'VirtualMachineStateStopped';
    say('reboot: Power down');
    // vfkit exits once the VM reports Stopped
    setTimeout(() => exit(0), 20);
  }, afterMs);
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function onRequest(req: IncomingMessage, res: ServerResponse): void {
  if (req.url !== '/vm/state') return reply(res, 404, { error: 'not found' });
  if (req.method === 'GET') {
    const running = state === 'VirtualMachineStateRunning';
    return reply(res, 200, { state, canStart: false, canPause: running, canResume: false, canStop: running, canHardStop: state !== 'VirtualMachineStateStopped' });
  }
  if (req.method !== 'POST') return reply(res, 405, { error: 'method not allowed' });
  let body = '';
  req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
  req.on('end', () => {
    let change: unknown;
    try {
      change = (JSON.parse(body) as { state?: unknown }).state;
    } catch {
      return reply(res, 400, { error: 'invalid JSON' });
    }
    if (change === 'Stop') {
      reply(res, 202, {});
      if (process.env.FAKE_VFKIT_IGNORE_STOP !== '1' && state === 'VirtualMachineStateRunning') powerOff(Number(process.env.FAKE_VFKIT_STOP_MS ?? 100));
      return;
    }
    if (change === 'HardStop') {
      reply(res, 202, {});
      state = 'VirtualMachineStateStopped';
      guest?.hardStop();
      setTimeout(() => exit(0), 20);
      return;
    }
    if (change === 'Pause' || change === 'Resume') return reply(res, 500, { error: `${String(change)} is not faked` });
    reply(res, 500, { error: `invalid new VMState: ${String(change)}` });
  });
}

function listenUnix(server: Server, path: string): void {
  sockets.push(path);
  server.on('error', (error) => usage(`listen unix ${path}: ${error.message}`));
  server.listen(path);
  servers.push(server);
}

if (vm.restSocket !== undefined) listenUnix(createHttpServer(onRequest), vm.restSocket);

const vsock = vm.devices.find((d) => d.kind === 'virtio-vsock');
const configShare = vm.devices.find((d) => d.kind === 'virtio-fs' && deviceOption(d, 'mountTag') === 'lbconfig');
if (process.env.FAKE_VFKIT_GUEST === 'qemu') {
  try {
    guest = await startQemuGuest(vm, process.env.FAKE_VFKIT_VHOST_DEVICE_VSOCK ?? 'vhost-device-vsock', say);
  } catch (error) {
    usage(`the QEMU stand-in did not start: ${error instanceof Error ? error.message : String(error)}`);
  }
  void guest.exited.then(() => {
    state = 'VirtualMachineStateStopped';
    exit(0);
  });
} else if (process.env.FAKE_VFKIT_GUEST === 'ssh' && vsock !== undefined && configShare !== undefined) {
  const dir = deviceOption(configShare, 'sharedDir') ?? '';
  listenUnix(stubGuest(readFileSync(join(dir, 'ssh_host_ed25519_key'), 'utf8'), readFileSync(join(dir, 'authorized_keys'), 'utf8'), () => powerOff(50)), deviceOption(vsock, 'socketURL') ?? '');
  // the guest's init prints its ready line once sshd listens
  setTimeout(() => say('LINUX-BUILDER-READY'), 100);
} else if (vsock !== undefined && deviceOption(vsock, 'connect') !== undefined) {
  const target = process.env.FAKE_VFKIT_VSOCK_TARGET;
  listenUnix(
    createServer((client) => {
      if (target === undefined) return client.destroy();
      const [host = '127.0.0.1', port = '22'] = target.split(':');
      const guest = connect(Number(port), host);
      client.pipe(guest).pipe(client);
      const close = (): void => {
        client.destroy();
        guest.destroy();
      };
      client.on('error', close);
      guest.on('error', close);
    }),
    deviceOption(vsock, 'socketURL') ?? '',
  );
}

// vfkit asks the guest to stop on SIGTERM and SIGINT, and stops it hard after 5 s
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (guest === undefined) exit(0);
    powerOff(0);
    setTimeout(() => exit(0), 5000);
  });
}

say(`fake vfkit: ${vm.cpus} cpus, ${vm.memoryMiB} MiB, cmdline ${vm.bootloader.cmdline}`);
process.stdout.write('virtual machine is running\n');
