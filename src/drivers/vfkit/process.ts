/**
 * vfkit as a process: spawned detached, recognised by the REST socket in its command line, stopped
 * through its REST API (Stop, then HardStop), killed only when it no longer answers.
 */
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RunningVm } from '../driver.js';
import { failed } from '../../errors.js';
import { findOnPath, isAlive, killHard, listProcesses, processCommandLine, spawnDetached, waitForExit } from '../process.js';
import { namesRestSocket, vfkitArgv, type VfkitConfig } from './argv.js';
import { isStopped, requestStateChange } from './rest.js';

export const vfkitInstallHint = 'install vfkit: brew install vfkit (or: nix profile install nixpkgs#vfkit)';

/** Spawns vfkit detached with its output in processLog; what a killed vfkit left (sockets, pid file) is removed first. */
export async function launchVfkit(config: VfkitConfig, processLog: string, path: string = process.env.PATH ?? ''): Promise<RunningVm> {
  const argv = vfkitArgv(config);
  const binary = await findOnPath('vfkit', path);
  if (binary === undefined) throw failed('vfkit not found on PATH', vfkitInstallHint);
  // vfkit refuses to listen on a socket file a killed vfkit left behind.
  const sockets = config.devices.flatMap((d) => (d.kind === 'virtio-vsock' && d.direction === 'connect' ? [d.socket] : []));
  await Promise.all([config.restSocket, config.pidFile, ...sockets].map((file) => rm(file, { force: true })));
  return spawnDetached([binary, ...argv.slice(1)], processLog);
}

export async function ownsVfkitProcess(pid: number, restSocket: string): Promise<boolean> {
  const commandLine = await processCommandLine(pid);
  return commandLine !== undefined && namesRestSocket(commandLine, restSocket);
}

/** Live processes whose command line names this REST socket; throws when processes cannot be listed. */
export async function findVfkitProcesses(restSocket: string): Promise<number[]> {
  const candidates = (await listProcesses()).filter((p) => p.pid !== process.pid && namesRestSocket(p.commandLine, restSocket));
  const alive = await Promise.all(candidates.map(async (p) => ((await isAlive(p.pid)) ? [p.pid] : [])));
  return alive.flat();
}

/** Polls until the process is gone or vfkit reports the VM stopped (it exits right after). */
async function waitForStop(pid: number, restSocket: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!(await isAlive(pid))) return true;
    if (await isStopped(restSocket, Math.min(1000, Math.max(100, deadline - Date.now())))) return waitForExit(pid, Math.max(1000, deadline - Date.now()));
    if (Date.now() >= deadline) return false;
    await sleep(Math.min(200, Math.max(1, deadline - Date.now())));
  }
}

/** vfkit's Stop: Virtualization.framework presses the guest's power key. */
export async function pressVfkitPowerButton(pid: number, restSocket: string): Promise<boolean> {
  if (!(await isAlive(pid)) || !(await ownsVfkitProcess(pid, restSocket))) return false;
  return requestStateChange(restSocket, 'Stop', 5000).catch(() => false);
}

export type StopOutcome = 'stopped' | 'hard-stopped' | 'killed' | 'not-running';

/**
 * Stop asks the guest to power off (its power button); when it has not after graceMs, HardStop
 * pulls the plug; when vfkit is still there after that, SIGKILL. A pid that is no longer this
 * vfkit is never signalled.
 */
export async function stopVfkit(pid: number, restSocket: string, options: { graceMs: number; hardMs: number }): Promise<StopOutcome> {
  if (!(await isAlive(pid)) || !(await ownsVfkitProcess(pid, restSocket))) return 'not-running';
  // a wedged vfkit accepts connections but never answers: do not wait longer than the step
  const restTimeout = Math.max(500, Math.min(5000, options.hardMs));
  if (options.graceMs > 0) {
    const asked = await requestStateChange(restSocket, 'Stop', restTimeout).catch(() => false);
    if (asked && (await waitForStop(pid, restSocket, options.graceMs))) return 'stopped';
  }
  const hard = await requestStateChange(restSocket, 'HardStop', restTimeout).catch(() => false);
  if (hard && (await waitForStop(pid, restSocket, options.hardMs))) return 'hard-stopped';
  if (!(await isAlive(pid))) return 'hard-stopped';
  if (await ownsVfkitProcess(pid, restSocket)) killHard(pid);
  if (!(await waitForExit(pid, Math.max(2000, options.hardMs)))) {
    throw failed(`the VM process ${pid} did not exit after SIGKILL`, `check it with: ps -p ${pid} -o pid,stat,command`);
  }
  return 'killed';
}

/** HardStop, then SIGKILL: what `stop --force` and a failed boot do. */
export async function forceStopVfkit(pid: number, restSocket: string, timeoutMs: number): Promise<void> {
  await stopVfkit(pid, restSocket, { graceMs: 0, hardMs: Math.max(500, Math.floor(timeoutMs / 2)) });
}
