/**
 * virtio-fs for QEMU: one virtiofsd per shared directory, started before QEMU (which connects to
 * its socket) and gone with it. Two implementations exist: the C one QEMU up to 7.2 shipped
 * (/usr/lib/qemu/virtiofsd) and the Rust one distributions package as `virtiofsd`
 * (/usr/libexec/virtiofsd, /usr/lib/virtiofsd). The guest must never write to the host: the Rust
 * one has --readonly; the C one has no such option, so it runs on a read-only bind mount of the
 * directory in a mount namespace of its own, which needs root (as its own sandbox does anyway).
 */
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ShareSupport } from '../driver.js';
import type { ShareContents } from '../devices.js';
import { ShareTransportFailed } from '../driver.js';
import { hostPackages, installCommand } from '../../platform/install-command.js';
import { findOnPath, isAlive, killHard, listProcesses, spawnDetached, waitForExit } from '../process.js';

/** Where distributions put it, newest packaging first; QEMU's own (C) last. */
export const virtiofsdPaths = ['/usr/libexec/virtiofsd', '/usr/lib/virtiofsd', '/usr/lib/qemu/virtiofsd'] as const;

export interface Virtiofsd {
  readonly path: string;
  readonly flavour: 'rust' | 'c';
  /** The Rust one's --readonly (newer releases; probed in --help); the C one never has it. */
  readonly readonlyOption: boolean;
}

/** A virtiofsd's flavour from its --help: the Rust one names --shared-dir. */
export function virtiofsdFromHelp(path: string, help: string): Virtiofsd {
  const rust = help.includes('--shared-dir');
  return { path, flavour: rust ? 'rust' : 'c', readonlyOption: rust && /--readonly\b/.test(help) };
}

function helpText(path: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(path, ['--help'], { timeout: 5000 }, (error, stdout, stderr) => {
      const text = `${stdout}${stderr}`;
      resolve(text.includes('socket') ? text : error ? undefined : text);
    });
  });
}

const executable = (path: string) => access(path, constants.X_OK).then(() => true, () => false);

/** The first virtiofsd that runs: on PATH, then where distributions put it. */
export async function findVirtiofsd(): Promise<Virtiofsd | undefined> {
  const onPath = await findOnPath('virtiofsd');
  for (const path of [...(onPath ? [onPath] : []), ...virtiofsdPaths]) {
    if (!(await executable(path))) continue;
    const help = await helpText(path);
    if (help !== undefined) return virtiofsdFromHelp(path, help);
  }
  return undefined;
}

/** Whether this host can share over virtio-fs now, for whom; 9p otherwise, with why and the fix. */
export function virtiofsSupport(found: Virtiofsd | undefined, uid: number | undefined): ShareSupport {
  const root = uid === 0;
  const install = installCommand(hostPackages.virtiofsd, process.platform, uid);
  if (found === undefined) {
    return { transports: ['9p'], reason: `9p: no virtiofsd (looked on PATH and in ${virtiofsdPaths.join(', ')})`, fix: `for virtio-fs: ${install}` };
  }
  if (found.flavour === 'c' && !root) {
    return { transports: ['9p'], reason: `9p: ${found.path} (QEMU's C virtiofsd) shares read-only only as root`, fix: `for virtio-fs as this user: ${install}, the Rust virtiofsd` };
  }
  if (!found.readonlyOption && !root) {
    return { transports: ['9p'], reason: `9p: ${found.path} has no --readonly, so it shares read-only only as root`, fix: 'for virtio-fs as this user: a newer virtiofsd, whose --help lists --readonly' };
  }
  const how = found.readonlyOption ? '--readonly' : 'on a read-only bind mount';
  return { transports: ['virtiofs', '9p'], reason: `virtio-fs through ${found.path} (${how}; 9p if it fails)` };
}

export interface ShareDaemon {
  readonly source: string;
  readonly socket: string;
  readonly contents?: ShareContents;
}

/** Runs a program on a read-only bind mount of dir, in a mount namespace of its own (root). */
function readOnlyBind(unshare: string, dir: string): string[] {
  return [unshare, '--mount', '--propagation', 'private', '--', '/bin/sh', '-c', 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"', 'virtiofsd-ro', dir];
}

/**
 * How long the guest keeps what it read, by what the share's files do. cache=auto rereads a file
 * at every open and keeps names and attributes for a second, so paths the host adds show up at
 * once. Where files never change once written, the guest keeps their pages across opens
 * (cache=always): every exec of the userland's programs and libraries, and of qemu-user for every
 * foreign build, would otherwise read them again from the host, and under TCG those reads cost
 * a warm build most of a second. The C virtiofsd takes a metadata timeout, so a Nix store keeps
 * auto's second for names (new paths appear as before); the Rust one keeps them for a day under
 * cache=always and has no such option, so there only the fixed userland gets it.
 */
function cacheMode(daemon: Virtiofsd, contents: ShareContents): { mode: 'auto' | 'always'; timeout?: number } {
  if (contents === 'fixed') return { mode: 'always' };
  if (contents === 'append-only' && daemon.flavour === 'c') return { mode: 'always', timeout: 1 };
  return { mode: 'auto' };
}

/**
 * The command line of one virtiofsd, as data. The socket path is written `--socket-path=…`, so a
 * leftover is found by it.
 */
export function virtiofsdArgv(daemon: Virtiofsd, share: ShareDaemon, host: { root: boolean; unshare: string }): string[] {
  const cache = cacheMode(daemon, share.contents ?? 'mutable');
  if (daemon.flavour === 'c') {
    const timeout = cache.timeout === undefined ? [] : ['-o', `timeout=${cache.timeout}`];
    return [...readOnlyBind(host.unshare, share.source), daemon.path, `--socket-path=${share.socket}`, '-o', `source=${share.source}`, '-o', `cache=${cache.mode}`, ...timeout];
  }
  const rust = [daemon.path, `--socket-path=${share.socket}`, `--shared-dir=${share.source}`, `--cache=${cache.mode}`, `--sandbox=${host.root ? 'namespace' : 'none'}`];
  return daemon.readonlyOption ? [...rust, '--readonly'] : [...readOnlyBind(host.unshare, share.source), ...rust];
}

/** The socket of the index-th virtio-fs share, in the instance's runtime dir (as short as qmp.sock). */
export function shareSocket(runtimeDir: string, index: number): string {
  return join(runtimeDir, `fs${index}.sock`);
}

const isSocket = (path: string) => stat(path).then((s) => s.isSocket(), () => false);

/**
 * Starts virtiofsd for share and waits for its socket; fails (ShareTransportFailed, with the
 * daemon's last words) when it exits or never listens. Nothing is left running on failure.
 */
export async function startVirtiofsd(argv: readonly string[], share: ShareDaemon, log: string, timeoutMs = 10_000): Promise<number> {
  await rm(share.socket, { force: true });
  const daemon = await spawnDetached(argv, log);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await isSocket(share.socket)) return daemon.pid;
    if (!(await isAlive(daemon.pid)) || Date.now() >= deadline) {
      killHard(daemon.pid);
      const said = await lastLines(log);
      throw new ShareTransportFailed(`virtiofsd for ${share.source} ${Date.now() >= deadline ? 'never listened' : 'exited'}${said ? `: ${said}` : ''} (log: ${log})`);
    }
    await sleep(20);
  }
}

async function lastLines(log: string): Promise<string> {
  const text = await readFile(log, 'utf8').catch(() => '');
  return text.trim().split('\n').slice(-2).join(' / ');
}

/** virtiofsd processes serving this runtime dir's shares (their command line names the socket). */
export async function findVirtiofsds(runtimeDir: string): Promise<number[]> {
  const prefix = `--socket-path=${join(runtimeDir, 'fs')}`;
  const serves = (commandLine: string) => commandLine.split(' ').some((arg) => arg.startsWith(prefix) && /^\d+\.sock$/.test(arg.slice(prefix.length)));
  return (await listProcesses()).filter((p) => p.pid !== process.pid && serves(p.commandLine)).map((p) => p.pid);
}

/** Ends every virtiofsd of the runtime dir (SIGTERM, then SIGKILL) and removes their sockets and pid files (the Rust one's `<socket>.pid`). */
export async function stopVirtiofsds(runtimeDir: string): Promise<void> {
  const pids = await findVirtiofsds(runtimeDir).catch(() => []);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  for (const pid of pids) if (!(await waitForExit(pid, 2000))) killHard(pid);
  const leftovers = (await readdir(runtimeDir).catch(() => [])).filter((name) => /^fs\d+\.sock(\.pid)?$/.test(name));
  await Promise.all(leftovers.map((name) => rm(join(runtimeDir, name), { force: true })));
}
