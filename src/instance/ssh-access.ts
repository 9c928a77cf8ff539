/**
 * How the host reaches a running guest over SSH: always through the system's ssh with the
 * instance's own ssh_config (pinned host key, the instance's key): the readiness probe and stop
 * run one command each, store registration and builds share a connection.
 */
import { execFile } from 'node:child_process';
import { rm, stat } from 'node:fs/promises';
import { hostAlias } from '../ssh/config.js';
import type { SshTarget } from '../ssh/client.js';
import type { SshEndpoint } from '../ssh/endpoint.js';
import { StoreSync, type SyncResult } from '../nix/store-sync.js';
import type { InstancePaths } from './paths.js';

/** The guest's sshd at endpoint, through the instance's ssh_config. */
export function sshTarget(paths: InstancePaths, endpoint: SshEndpoint): SshTarget {
  return { endpoint, configFile: paths.sshConfig, alias: hostAlias(paths.name) };
}

/** ssh through the instance's own config (pinned key, shared connection); keepGuestShell: see StoreSync. */
export function storeSyncFor(paths: InstancePaths, onRegistered?: (result: SyncResult) => void, keepGuestShell = false): StoreSync {
  return new StoreSync(['ssh', '-F', paths.sshConfig, hostAlias(paths.name)], onRegistered, keepGuestShell);
}

/** Ends ssh's shared connection (ControlMaster) to the VM, so no ssh process outlives it. */
export async function closeSharedConnection(paths: InstancePaths): Promise<void> {
  if (!(await stat(paths.controlSocket).catch(() => undefined))) return;
  await new Promise<void>((resolve) => {
    execFile('ssh', ['-F', paths.sshConfig, '-O', 'exit', hostAlias(paths.name)], { timeout: 5000 }, () => resolve());
  });
  await rm(paths.controlSocket, { force: true });
}
