/**
 * How the host reaches a running guest over SSH: in-process (readiness, stop) with the pinned
 * key, and through the system's ssh with the instance's own ssh_config (store registration, the
 * shared connection a build leaves behind).
 */
import { execFile } from 'node:child_process';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { publicKeyBlob } from '../ssh/keys.js';
import { hostAlias } from '../ssh/config.js';
import type { SshTarget } from '../ssh/client.js';
import type { SshEndpoint } from '../ssh/endpoint.js';
import { StoreSync, type SyncResult } from '../nix/store-sync.js';
import { guestUser } from './identity.js';
import type { InstancePaths } from './paths.js';

/** The guest's sshd at endpoint, with the instance's key and its pinned host key. */
export async function sshTarget(paths: InstancePaths, endpoint: SshEndpoint): Promise<SshTarget> {
  const [privateKey, hostKeyPub] = await Promise.all([
    readFile(paths.clientKey, 'utf8'),
    readFile(join(paths.guestShare, 'ssh_host_ed25519_key.pub'), 'utf8'),
  ]);
  return { endpoint, user: guestUser, privateKey, hostKeyBlob: publicKeyBlob(hostKeyPub) };
}

/** ssh through the instance's own config (pinned key, shared connection). */
export function storeSyncFor(paths: InstancePaths, onRegistered?: (result: SyncResult) => void): StoreSync {
  return new StoreSync(['ssh', '-F', paths.sshConfig, hostAlias(paths.name)], onRegistered);
}

/** Ends ssh's shared connection (ControlMaster) to the VM, so no ssh process outlives it. */
export async function closeSharedConnection(paths: InstancePaths): Promise<void> {
  if (!(await stat(paths.controlSocket).catch(() => undefined))) return;
  await new Promise<void>((resolve) => {
    execFile('ssh', ['-F', paths.sshConfig, '-O', 'exit', hostAlias(paths.name)], { timeout: 5000 }, () => resolve());
  });
  await rm(paths.controlSocket, { force: true });
}
