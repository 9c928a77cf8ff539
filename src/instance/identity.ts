/**
 * What makes an instance reachable, settled before its first boot so `nix-config` can be
 * installed first: remembered settings with the SSH port, the keys, known_hosts, ssh_config.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { settingsFile, settingsFrom, settingsVersion, type Settings } from '../config/settings.js';
import { readVersionedJson, writeVersionedJson } from '../fs/versioned-json.js';
import { guestShareFiles } from '../guest/layout.js';
import { hostAlias, knownHostsLine, sshConfigBlock, type SshHost } from '../ssh/config.js';
import { loopbackPort, type SshEndpoint } from '../ssh/endpoint.js';
import type { DriverCapabilities } from '../drivers/driver.js';
import { ensureKeyPair } from '../ssh/keys.js';
import { readTextIfExists, writeFileAtomic } from '../fs/files.js';
import { ensurePrivateDir } from '../fs/private-dir.js';
import type { InstancePaths } from './paths.js';
import { pickFreePort } from './ports.js';

export const guestUser = 'root';

export async function loadSettings(paths: InstancePaths): Promise<Settings> {
  return settingsFrom(await readVersionedJson(paths.config, settingsFile), paths.config);
}

export async function saveSettings(paths: InstancePaths, settings: Settings): Promise<void> {
  await writeVersionedJson(paths.config, settingsFile, { ...settings, version: settingsVersion });
}

export interface Identity {
  readonly settings: Settings;
  /** How ssh reaches the guest: its endpoint, user, key and pinned host key. */
  readonly sshHost: SshHost;
  /** The guest's host public key line. */
  readonly hostPublicKey: string;
  /** Keys were generated now: the first use, the state dir was removed, or a stored key was not valid OpenSSH. */
  readonly newKeys: boolean;
}

/** ssh options that make repeated connections (one per Nix build) reuse one SSH session. */
export function connectionSharing(paths: InstancePaths): string[] {
  // Short enough that an idle agent can stop the VM soon after the last build.
  return ['ControlMaster auto', `ControlPath ${paths.controlSocket}`, 'ControlPersist 60s'];
}

/**
 * Where the host reaches the guest's sshd, as the driver says: the instance's kept loopback port
 * (undefined before one is picked), or the instance's socket relayed to the guest's vsock.
 */
export function guestSshEndpoint(capabilities: Pick<DriverCapabilities, 'ssh'>, paths: InstancePaths, settings: Pick<Settings, 'sshPort'>): SshEndpoint | undefined {
  if (capabilities.ssh === 'vsock-socket') return { kind: 'unix', path: paths.guestSshSocket };
  return settings.sshPort === undefined ? undefined : loopbackPort(settings.sshPort);
}

export function sshHostOf(paths: InstancePaths, endpoint: SshEndpoint): SshHost {
  return {
    alias: hostAlias(paths.name),
    endpoint,
    user: guestUser,
    identityFile: paths.clientKey,
    knownHostsFile: paths.knownHosts,
  };
}

/**
 * Creates what is missing (dirs, keys, a free port where the driver forwards one) and rewrites
 * known_hosts and ssh_config.
 */
export async function ensureIdentity(paths: InstancePaths, wanted: Settings, capabilities: Pick<DriverCapabilities, 'ssh'>): Promise<Identity> {
  await ensurePrivateDir(paths.runtimeDir);
  await ensurePrivateDir(paths.stateDir);
  await ensurePrivateDir(paths.guestShare);
  const needsPort = capabilities.ssh === 'forwarded-port' && wanted.sshPort === undefined;
  const settings = needsPort ? { ...wanted, sshPort: await pickFreePort() } : wanted;
  if (settings !== wanted || (await readTextIfExists(paths.config)) === undefined) await saveSettings(paths, settings);
  const alias = hostAlias(paths.name);
  const [clientKey, hostKey] = await Promise.all([
    ensureKeyPair(paths.clientKey, paths.clientKeyPub, `${alias}-client`),
    ensureKeyPair(join(paths.guestShare, guestShareFiles.hostKey), join(paths.guestShare, guestShareFiles.hostKeyPub), alias),
  ]);
  const endpoint = guestSshEndpoint(capabilities, paths, settings);
  if (endpoint === undefined) throw new Error('ensureIdentity: no SSH endpoint after picking a port');
  const sshHost = sshHostOf(paths, endpoint);
  await writeFileAtomic(paths.knownHosts, knownHostsLine(alias, hostKey.publicKey));
  await writeFileAtomic(paths.sshConfig, sshConfigBlock(sshHost, connectionSharing(paths)));
  return { settings, sshHost, hostPublicKey: hostKey.publicKey, newKeys: clientKey.created || hostKey.created };
}

export async function readHostPublicKey(paths: InstancePaths): Promise<string> {
  return readFile(join(paths.guestShare, guestShareFiles.hostKeyPub), 'utf8');
}
