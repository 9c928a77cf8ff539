/**
 * Every file of an instance is named here, and only here.
 *
 * Linux: state in $XDG_STATE_HOME/linux-builder/<name>/, cache in $XDG_CACHE_HOME/linux-builder/,
 * sockets in a short runtime dir ($XDG_RUNTIME_DIR/linux-builder/<name>/ or
 * /tmp/linux-builder-<uid>/<name>/). As root without XDG variables: /var/lib/linux-builder.
 * macOS: ~/Library/Application Support/linux-builder and ~/Library/Caches/linux-builder; as root
 * /var/db/linux-builder and /Library/Caches/linux-builder (src/fs/roots.ts).
 */
import { join } from 'node:path';
import { badInput } from '../errors.js';

/** Node truncates longer unix socket paths silently; we refuse them instead. */
export const maxSocketPathBytes = 103;

const namePattern = /^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$/;

export function validateInstanceName(name: string): string {
  if (!namePattern.test(name)) {
    throw badInput(
      `instance name must be a plain word of letters, digits, "-" and "_" (got ${JSON.stringify(name)})`,
      'for example: --name default, --name big-builds',
    );
  }
  return name;
}

export { roots, type Roots } from '../fs/roots.js';
import { roots, type Roots } from '../fs/roots.js';

export interface InstancePaths {
  readonly name: string;
  readonly stateDir: string;
  /** Remembered settings (cores, memory, accel, kernel, ssh port). */
  readonly config: string;
  /** What is running: pid, boot time, accel actually used. */
  readonly state: string;
  /** How and when the last VM exited, so `status` can say why it is down. */
  readonly lastExit: string;
  readonly lock: string;
  readonly consoleLog: string;
  readonly processLog: string;
  /** The client's private key; never leaves the host. */
  readonly clientKey: string;
  readonly clientKeyPub: string;
  readonly knownHosts: string;
  readonly sshConfig: string;
  /** 0700 directory shared read-only with the guest: its host key, authorized key, config. */
  readonly guestShare: string;
  /** Sockets: ssh's shared connection, and the driver's own (it names them: VmControl). */
  readonly runtimeDir: string;
  /** ssh's shared connection (ControlPath), so repeated builds skip the handshake. */
  readonly controlSocket: string;
  /** Where a driver that reaches SSH over vsock relays the guest's sshd (capabilities.ssh). */
  readonly guestSshSocket: string;
  /** Nix's machines file for this instance, referenced from nix.conf. */
  readonly machines: string;
  /** The ssh_config block Nix's ssh needs (what nix-config installs), rewritten with the machines file: the Nix modules Include it. */
  readonly nixSshConfig: string;
  /** Which config files `nix-config --install` changed, so --uninstall restores them exactly. */
  readonly installed: string;
  /** The agent's stdout and stderr when launchd runs it (systemd sends them to the journal). */
  readonly serviceLog: string;
  /** The on-demand agent: its JSON-lines event log, its live state, its single-instance lock. */
  readonly agentLog: string;
  readonly agentState: string;
  readonly agentLock: string;
  /** The instance disk: a sparse raw image holding the store's upper layer, /nix/var and /tmp of the guest. */
  readonly disk: string;
  readonly cacheDir: string;
}

export function instancePaths(name: string, r: Roots = roots()): InstancePaths {
  validateInstanceName(name);
  const stateDir = join(r.state, name);
  const runtimeDir = join(r.runtime, name);
  return {
    name,
    stateDir,
    config: join(stateDir, 'config.json'),
    state: join(stateDir, 'state.json'),
    lastExit: join(stateDir, 'last-exit.json'),
    lock: join(stateDir, 'lock'),
    consoleLog: join(stateDir, 'console.log'),
    processLog: join(stateDir, 'vm.log'),
    clientKey: join(stateDir, 'id_ed25519'),
    clientKeyPub: join(stateDir, 'id_ed25519.pub'),
    knownHosts: join(stateDir, 'known_hosts'),
    sshConfig: join(stateDir, 'ssh_config'),
    guestShare: join(stateDir, 'guest-share'),
    runtimeDir,
    controlSocket: join(runtimeDir, 'ssh'),
    guestSshSocket: join(runtimeDir, 'guest-ssh.sock'),
    machines: join(stateDir, 'machines'),
    nixSshConfig: join(stateDir, 'nix-ssh_config'),
    installed: join(stateDir, 'installed.json'),
    serviceLog: join(stateDir, 'service.log'),
    agentLog: join(stateDir, 'agent.log'),
    agentState: join(stateDir, 'agent.json'),
    agentLock: join(stateDir, 'agent.lock'),
    disk: join(stateDir, 'disk.img'),
    cacheDir: r.cache,
  };
}

/** Refuses socket paths Node would silently truncate. */
export function checkSocketPath(path: string): void {
  const bytes = Buffer.byteLength(path);
  if (bytes > maxSocketPathBytes) {
    throw badInput(
      `socket path is ${bytes} bytes, over the ${maxSocketPathBytes}-byte limit of unix sockets: ${path}`,
      'set XDG_RUNTIME_DIR to a shorter directory, or use a shorter --name',
    );
  }
}
