/**
 * The host's nix-daemon, when Nix is multi-user: whether one listens, and restarting it. It reads
 * nix.conf only at its start, but the machines files its builders name at every build.
 */
import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { findOnPath } from '../drivers/process.js';

export function daemonSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.NIX_DAEMON_SOCKET_PATH ?? join(env.NIX_STATE_DIR ?? '/nix/var/nix', 'daemon-socket', 'socket');
}

/** A socket file alone may be left over from a daemon that died: something must accept on it. */
export function daemonListening(env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(daemonSocketPath(env));
    socket.setTimeout(2000);
    socket.on('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
    socket.on('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** The command that restarts the daemon where a service manager runs it, for this platform. */
export function daemonRestartCommand(platform: NodeJS.Platform = process.platform): string[] {
  return platform === 'darwin' ? ['launchctl', 'kickstart', '-k', 'system/org.nixos.nix-daemon'] : ['systemctl', 'restart', 'nix-daemon.service'];
}

export type DaemonRestart =
  | { readonly restarted: true; readonly command: string }
  | { readonly restarted: false; readonly command: string; readonly why: string };

function run(argv: readonly string[]): Promise<{ ok: boolean; said: string }> {
  const [command = '', ...args] = argv;
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 60_000 }, (error, _stdout, stderr) =>
      resolve({ ok: error === null, said: (stderr.trim().split('\n').pop() ?? '') || (error?.message ?? '') }));
  });
}

/** Restarts the daemon through systemd or launchd when one of them runs it; else says why not. */
export async function restartDaemon(platform: NodeJS.Platform = process.platform): Promise<DaemonRestart> {
  const argv = daemonRestartCommand(platform);
  const command = argv.join(' ');
  if (!(await findOnPath(argv[0] ?? ''))) return { restarted: false, command, why: `${argv[0]} not found` };
  if (platform !== 'darwin') {
    const active = await run(['systemctl', 'is-active', '--quiet', 'nix-daemon.service']);
    if (!active.ok) return { restarted: false, command, why: 'systemd does not run nix-daemon.service here' };
  }
  const result = await run(argv);
  return result.ok ? { restarted: true, command } : { restarted: false, command, why: result.said };
}
