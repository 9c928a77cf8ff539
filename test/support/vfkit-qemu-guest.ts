/**
 * A real guest behind the fake vfkit (FAKE_VFKIT_GUEST=qemu): the VM vfkit's command line
 * describes, run by qemu-system-aarch64 `-machine virt` under TCG, each vfkit device mapped to
 * the QEMU device closest to what Virtualization.framework gives the guest:
 *
 * - `virtio-fs,sharedDir,mountTag` → vhost-user-fs-pci and the host's virtiofsd (read-write at
 *   the host's side, as vfkit shares);
 * - `virtio-blk,path` → virtio-blk-pci on the raw image;
 * - `virtio-net,nat` → virtio-net-pci on QEMU's user network, whose DHCP server hands out the
 *   address, as vfkit's NAT does;
 * - `virtio-vsock,port,socketURL,connect` → vhost-user-vsock-pci with vhost-device-vsock, and a
 *   relay on socketURL that opens the guest's port for every connection (vhost-device-vsock's
 *   `CONNECT <port>` handshake), as vfkit does in connect mode;
 * - `virtio-serial,logFilePath` → a virtconsole (hvc0) appending to the log;
 * - `virtio-rng` → virtio-rng-pci; `rosetta,mountTag` → a virtio-fs share of
 *   FAKE_VFKIT_ROSETTA_DIR (the stand-in's directory).
 *
 * The power button is QMP's system_powerdown (the guest sees a key press, as with
 * Virtualization.framework's requestStop). Every child runs with a parent-death signal, so no
 * QEMU, virtiofsd or vhost-device-vsock outlives the fake however it ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { deviceOption, type ParsedVfkit } from './vfkit-grammar.js';
import { findVirtiofsd } from '../../src/drivers/qemu/virtiofsd.js';

export interface QemuGuest {
  /** Presses the guest's power button. */
  powerButton(): void;
  /** Ends QEMU at once. */
  hardStop(): void;
  /** QEMU's exit. */
  readonly exited: Promise<void>;
  /** Ends every child and removes the stand-in's files. */
  cleanup(): void;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits for a daemon's socket to appear. Never connects: a vhost-user daemon serves its first connection only. */
async function waitForSocket(path: string, child: ChildProcess, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(existsSync(path) && statSync(path).isSocket())) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${what} did not listen on ${path}`);
    await sleep(50);
  }
}

/** vfkit's connect mode: every connection to socketURL becomes a connection to the guest's port. */
function vsockRelay(socketURL: string, backend: string, port: number): Server {
  return createServer((client) => {
    client.pause();
    const guest = connect(backend);
    const close = (): void => {
      client.destroy();
      guest.destroy();
    };
    client.on('error', close);
    guest.on('error', close);
    guest.once('connect', () => guest.write(`CONNECT ${port}\n`));
    let reply = Buffer.alloc(0);
    const onReply = (chunk: Buffer): void => {
      reply = Buffer.concat([reply, chunk]);
      const end = reply.indexOf('\n');
      if (end < 0) return;
      guest.off('data', onReply);
      if (!reply.subarray(0, end).toString().startsWith('OK ')) return close();
      const rest = reply.subarray(end + 1);
      if (rest.length > 0) client.write(rest);
      client.pipe(guest).pipe(client);
      client.resume();
      guest.on('close', close);
      client.on('close', close);
    };
    guest.on('data', onReply);
  }).listen(socketURL);
}

export async function startQemuGuest(vm: ParsedVfkit, vhostDeviceVsock: string, log: (line: string) => void): Promise<QemuGuest> {
  const dir = mkdtempSync('/tmp/lbvq-');
  const children: ChildProcess[] = [];
  const servers: Server[] = [];
  const consoleOut = openSync(join(dir, 'children.log'), 'a');
  // setpriv: the kernel ends the child when the fake ends, even by SIGKILL
  const run = (argv: string[]): ChildProcess => {
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', ...argv], { stdio: ['ignore', consoleOut, consoleOut] });
    children.push(child);
    return child;
  };
  const cleanup = (): void => {
    for (const server of servers) server.close();
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const virtiofsd = await findVirtiofsd();
    if (virtiofsd === undefined) throw new Error('no virtiofsd on this host');
    const qemu: string[] = [
      'qemu-system-aarch64', '-nodefaults', '-no-user-config', '-display', 'none',
      '-machine', 'virt,memory-backend=mem', '-cpu', 'max,pauth-impdef=on', '-accel', 'tcg',
      '-smp', String(vm.cpus), '-m', `${vm.memoryMiB}M`,
      '-object', `memory-backend-memfd,id=mem,size=${vm.memoryMiB}M,share=on`,
      '-kernel', vm.bootloader.kernel, '-initrd', vm.bootloader.initrd, '-append', vm.bootloader.cmdline,
      '-qmp', `unix:${join(dir, 'qmp.sock')},server=on,wait=off`,
    ];
    let index = 0;
    for (const device of vm.devices) {
      const id = `d${index++}`;
      const option = (key: string): string => deviceOption(device, key) ?? '';
      switch (device.kind) {
        case 'virtio-fs':
        case 'rosetta': {
          const source = device.kind === 'rosetta' ? process.env.FAKE_VFKIT_ROSETTA_DIR ?? '' : option('sharedDir');
          if (source === '') throw new Error('rosetta device without FAKE_VFKIT_ROSETTA_DIR');
          const socket = join(dir, `${id}.sock`);
          const daemon = run(
            virtiofsd.flavour === 'c'
              ? [virtiofsd.path, `--socket-path=${socket}`, '-o', `source=${source}`, '-o', 'cache=auto']
              : [virtiofsd.path, `--socket-path=${socket}`, `--shared-dir=${source}`, '--cache=auto', '--sandbox=none'],
          );
          await waitForSocket(socket, daemon, `virtiofsd for ${source}`);
          qemu.push('-chardev', `socket,id=${id},path=${socket}`, '-device', `vhost-user-fs-pci,chardev=${id},tag=${option('mountTag')}`);
          break;
        }
        case 'virtio-blk':
          qemu.push('-drive', `file=${option('path')},format=raw,if=none,id=${id}`, '-device', `virtio-blk-pci,drive=${id}`);
          break;
        case 'virtio-net':
          qemu.push('-netdev', `user,id=${id}`, '-device', `virtio-net-pci,netdev=${id}${option('mac') ? `,mac=${option('mac')}` : ''}`);
          break;
        case 'virtio-vsock': {
          const control = join(dir, 'vsock.ctl');
          const backend = join(dir, 'vsock.uds');
          const daemon = run([vhostDeviceVsock, '--guest-cid', '3', '--socket', control, '--uds-path', backend]);
          await waitForSocket(control, daemon, 'vhost-device-vsock');
          qemu.push('-chardev', `socket,id=${id},path=${control}`, '-device', `vhost-user-vsock-pci,chardev=${id}`);
          servers.push(vsockRelay(option('socketURL'), backend, Number(option('port'))));
          break;
        }
        case 'virtio-serial':
          qemu.push('-chardev', `file,id=${id},path=${option('logFilePath')},append=on`, '-device', 'virtio-serial-pci', '-device', `virtconsole,chardev=${id}`);
          break;
        case 'virtio-rng':
          qemu.push('-device', 'virtio-rng-pci');
          break;
        default:
          throw new Error(`the QEMU stand-in has no mapping for vfkit's ${device.kind}`);
      }
    }
    log(`QEMU stand-in: ${qemu.join(' ')}`);
    const vmProcess = run(qemu);
    const exited = new Promise<void>((resolve) =>
      vmProcess.on('exit', (code, signal) => {
        // what QEMU and the daemons said, for a VM that ended on its own account
        if (code !== 0 && signal === null) log(`QEMU stand-in exited ${code}: ${readFileSync(join(dir, 'children.log'), 'utf8').trim().split('\n').slice(-8).join(' / ')}`);
        resolve();
      }),
    );
    return {
      powerButton: () => {
        const qmp = connect(join(dir, 'qmp.sock'));
        qmp.on('error', () => undefined);
        qmp.write('{"execute":"qmp_capabilities"}\n{"execute":"system_powerdown"}\n');
        setTimeout(() => qmp.destroy(), 1000);
      },
      hardStop: () => {
        vmProcess.kill('SIGKILL');
      },
      exited,
      cleanup,
    };
  } catch (error) {
    cleanup();
    throw error;
  }
}
