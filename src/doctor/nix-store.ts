/**
 * Whether this user's Nix can build through the builder at all: a single-user store belongs to
 * one user, and under a nix-daemon the daemon builds as root and takes a user's `builders` only
 * from trusted users. storeAccessCheck is pure over the probed facts; probeStoreAccess reads them.
 */
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { systemSshConfig } from '../nix/registration.js';

export interface StoreAccessFacts {
  readonly user: string;
  readonly groups: readonly string[];
  /** Nix's state directory (/nix/var/nix): writable means this user's Nix opens the store itself. */
  readonly stateDir: string;
  readonly stateDirOwner: string;
  readonly stateDirWritable: boolean;
  readonly daemonSocket: boolean;
  /** true when nix-store opened the store as this user, else the last line it printed. */
  readonly opens: true | string;
  readonly trustedUsers: readonly string[];
}

export interface StoreAccess {
  readonly verdict: 'ok' | 'warn' | 'fail';
  readonly detail: string;
  readonly fix?: string;
}

function daemonStartCommand(platform: NodeJS.Platform = process.platform): string {
  return platform === 'darwin' ? 'launchctl kickstart system/org.nixos.nix-daemon' : 'systemctl start nix-daemon.service';
}

/** The daemon builds as root: its ssh reads root's config and /etc/ssh, never this user's ~/.ssh. */
const daemonSsh = (): string =>
  `the daemon runs ssh as root, so the ssh_config block belongs in ${systemSshConfig()}: linux-builder nix-config --install --ssh-config ${systemSshConfig()} (needs write access to it)`;

export function isTrusted(facts: Pick<StoreAccessFacts, 'user' | 'groups' | 'trustedUsers'>): boolean {
  return facts.trustedUsers.some((entry) => entry === '*' || entry === facts.user || (entry.startsWith('@') && facts.groups.includes(entry.slice(1))));
}

export function storeAccessCheck(facts: StoreAccessFacts): StoreAccess {
  const { user, stateDirOwner: owner } = facts;
  const ownStore = `build as ${owner}; or install a multi-user Nix (nix-daemon) and add ${user} to trusted-users in /etc/nix/nix.conf; or give ${user} a Nix store of its own`;
  if (facts.opens !== true) {
    if (facts.daemonSocket) {
      return { verdict: 'fail', detail: `a nix-daemon socket exists, but nix-store fails for ${user}: ${facts.opens}`, fix: `sudo ${daemonStartCommand()} (then check that its socket lets this user connect)` };
    }
    if (!facts.stateDirWritable) {
      return {
        verdict: 'fail',
        detail: `the Nix store is single-user and belongs to ${owner} (${facts.stateDir}), and no nix-daemon runs: ${user} cannot use it (nix-store: ${facts.opens}). The VM still starts, but host store paths are not registered in it and nothing can build through it as ${user}`,
        fix: ownStore,
      };
    }
    return { verdict: 'fail', detail: `nix-store fails: ${facts.opens}`, fix: 'nix-store --verify' };
  }
  if (facts.stateDirWritable) return { verdict: 'ok', detail: `${user} opens the store itself (${facts.stateDir} is writable): builds use ${user}'s nix.conf` };
  if (!facts.daemonSocket) {
    return { verdict: 'fail', detail: `${user} can read the store but not write it, and no nix-daemon runs: builds cannot store their results`, fix: ownStore };
  }
  if (!isTrusted(facts)) {
    return {
      verdict: 'ok',
      detail: `builds go through nix-daemon, which uses the system's builders for every user; ${user}'s own builders would count only in trusted-users (${facts.trustedUsers.join(' ') || 'empty'})`,
    };
  }
  return { verdict: 'warn', detail: `builds go through nix-daemon; ${user} is in trusted-users, so it takes ${user}'s builders too`, fix: daemonSsh() };
}

/** Builds go through a daemon that ignores this user's builders: only the system's count. */
export function usesSystemBuilders(facts: StoreAccessFacts): boolean {
  return facts.opens === true && !facts.stateDirWritable && facts.daemonSocket && !isTrusted(facts);
}

function output(command: string, args: readonly string[]): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 20_000 }, (error, stdout, stderr) => resolve({ ok: error === null, stdout, stderr: stderr || (error?.message ?? '') }));
  });
}

async function userName(uid: number): Promise<string> {
  if (uid === 0) return 'root';
  const passwd = await readFile('/etc/passwd', 'utf8').catch(() => '');
  const line = passwd.split('\n').find((l) => l.split(':')[2] === String(uid));
  return line?.split(':')[0] ?? `uid ${uid}`;
}

export async function probeStoreAccess(trustedUsers: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<StoreAccessFacts> {
  const stateDir = env.NIX_STATE_DIR ?? '/nix/var/nix';
  const socket = env.NIX_DAEMON_SOCKET_PATH ?? join(stateDir, 'daemon-socket', 'socket');
  const [owner, writable, daemonSocket, probe, groups] = await Promise.all([
    stat(stateDir).then((s) => userName(s.uid), () => 'nobody'),
    access(stateDir, constants.W_OK).then(() => true, () => false),
    stat(socket).then((s) => s.isSocket(), () => false),
    // With no paths it checks nothing, but it opens the store as every other nix-store command does.
    output('nix-store', ['--check-validity']),
    output('id', ['-Gn']),
  ]);
  const said = probe.stderr.trim().split('\n').pop()?.replace(/^error: /, '') ?? 'failed';
  return {
    user: userInfo().username,
    groups: groups.stdout.trim().split(/\s+/).filter((g) => g !== ''),
    stateDir,
    stateDirOwner: owner,
    stateDirWritable: writable,
    daemonSocket,
    opens: probe.ok ? true : said,
    trustedUsers,
  };
}
