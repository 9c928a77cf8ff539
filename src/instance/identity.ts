/**
 * What makes an instance reachable, settled before its first boot so `nix-config` can be
 * installed first: remembered settings with the SSH port, the keys, known_hosts, ssh_config.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { settingsFile, settingsFrom, settingsVersion, type Settings } from '../config/settings.js';
import { readVersionedJson, writeVersionedJson } from '../fs/versioned-json.js';
import { guestShareFiles } from '../guest/layout.js';
import { hostAlias, knownHostsLine, sshConfigBlock, type SshEndpoint } from '../ssh/config.js';
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
  readonly endpoint: SshEndpoint;
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

export function endpointOf(paths: InstancePaths, port: number): SshEndpoint {
  return {
    alias: hostAlias(paths.name),
    host: '127.0.0.1',
    port,
    user: guestUser,
    identityFile: paths.clientKey,
    knownHostsFile: paths.knownHosts,
  };
}

/** Creates what is missing (dirs, keys, a free port) and rewrites known_hosts and ssh_config. */
export async function ensureIdentity(paths: InstancePaths, wanted: Settings): Promise<Identity> {
  await ensurePrivateDir(paths.runtimeDir);
  await ensurePrivateDir(paths.stateDir);
  await ensurePrivateDir(paths.guestShare);
  const settings = wanted.sshPort === undefined ? { ...wanted, sshPort: await pickFreePort() } : wanted;
  if (settings !== wanted || (await readTextIfExists(paths.config)) === undefined) await saveSettings(paths, settings);
  const alias = hostAlias(paths.name);
  const [clientKey, hostKey] = await Promise.all([
    ensureKeyPair(paths.clientKey, paths.clientKeyPub, `${alias}-client`),
    ensureKeyPair(join(paths.guestShare, guestShareFiles.hostKey), join(paths.guestShare, guestShareFiles.hostKeyPub), alias),
  ]);
  const endpoint = endpointOf(paths, settings.sshPort ?? 0);
  await writeFileAtomic(paths.knownHosts, knownHostsLine(alias, hostKey.publicKey));
  await writeFileAtomic(paths.sshConfig, sshConfigBlock(endpoint, connectionSharing(paths)));
  return { settings, endpoint, hostPublicKey: hostKey.publicKey, newKeys: clientKey.created || hostKey.created };
}

export async function readHostPublicKey(paths: InstancePaths): Promise<string> {
  return readFile(join(paths.guestShare, guestShareFiles.hostKeyPub), 'utf8');
}
