/**
 * Status, computed from the state files and process checks: what `status` prints and what
 * start, stop and the agent decide from. Never throws to its callers: a broken instance is
 * state "broken" with reasons.
 */
import { stat } from 'node:fs/promises';
import { UserError } from '../errors.js';
import { guestArchOf, type Settings } from '../config/settings.js';
import { hostArch } from '../platform/host.js';
import { selectDriver } from '../drivers/index.js';
import type { Driver, GuestArch, ShareTransport } from '../drivers/driver.js';
import type { UserlandSummary } from '../guest/userland.js';
import { isAlive } from '../drivers/process.js';
import { readAgentStatus, type AgentStatus } from '../agent/agent-state.js';
import { hostAlias } from '../ssh/config.js';
import type { SshEndpoint } from '../ssh/endpoint.js';
import { diskUsage, type DiskUsage } from './disk.js';
import { readLastExit, type LastExit } from './last-exit.js';
import { lockHolder } from '../fs/lock.js';
import { instancePaths, type InstancePaths } from './paths.js';
import { guestSshEndpoint, guestUser, loadSettings } from './identity.js';
import { readRunState, type RunState } from './state.js';

export type InstanceState = 'stopped' | 'starting' | 'running' | 'broken';

export interface InstanceStatus {
  name: string;
  state: InstanceState;
  pid: number | null;
  driver: string;
  /** The guest's architecture: of the running VM, else the remembered --arch or the host's. */
  arch: GuestArch;
  /** The running VM's /usr: the host's, or which Debian tree; null when no VM runs (or an earlier version started it). */
  userland: UserlandSummary | null;
  accel: string | null;
  cores: number | null;
  memoryMiB: number | null;
  systems: string[];
  /** Where the guest's sshd is reached, as whom, and the name its pinned key is filed under. */
  ssh: SshStatus | null;
  /** How the running VM's shares (/usr, the store) reach the guest. */
  shares: ShareTransport | null;
  startedAt: string | null;
  bootSeconds: number | null;
  stateDir: string;
  /** The on-demand agent serving this instance, when one runs. */
  agent: AgentStatus | null;
  /** The instance disk as the host sees it; null before the first start. */
  disk: DiskUsage | null;
  /** How and when the last VM exited; null when none has exited since the state dir was made. */
  lastExit: LastExit | null;
  reasons: string[];
}

export type SshStatus = SshEndpoint & { user: string; hostKeyAlias: string };

function sshStatusOf(paths: InstancePaths, endpoint: SshEndpoint | undefined): SshStatus | null {
  return endpoint === undefined ? null : { ...endpoint, user: guestUser, hostKeyAlias: hostAlias(paths.name) };
}

export interface Observed {
  status: InstanceStatus;
  run: RunState | undefined;
  /** The VM process of this instance is alive. */
  owned: boolean;
}

export async function observe(paths: InstancePaths, driver: Driver): Promise<Observed> {
  const reasons: string[] = [];
  let settings: Settings | undefined;
  try {
    settings = await loadSettings(paths);
  } catch (error) {
    reasons.push(error instanceof UserError ? error.message : String(error));
  }
  const lastExit = await readLastExit(paths.lastExit);
  const base: InstanceStatus = {
    name: paths.name,
    state: 'stopped',
    pid: null,
    driver: driver.name,
    arch: settings ? guestArchOf(settings) : hostArch(),
    userland: null,
    accel: null,
    cores: settings?.cores ?? null,
    memoryMiB: settings?.memoryMiB ?? null,
    systems: [],
    ssh: sshStatusOf(paths, settings ? guestSshEndpoint(driver.capabilities, paths, settings) : undefined),
    shares: null,
    startedAt: null,
    bootSeconds: null,
    stateDir: paths.stateDir,
    agent: await readAgentStatus(paths.agentState),
    disk: await diskUsage(paths.disk),
    lastExit,
    reasons,
  };
  const read = await readRunState(paths.state);
  const starter = await lockHolder(paths.lock);
  if (read.kind === 'corrupt') {
    reasons.push(corruptStateAdvice(paths, read.reason, await driver.findProcesses(driver.control(paths.runtimeDir)).catch(() => undefined)));
    return { status: { ...base, state: 'broken' }, run: undefined, owned: false };
  }
  if (read.kind === 'missing') {
    if (starter !== undefined) return { status: { ...base, state: 'starting', reasons: [...reasons, `start in progress (pid ${starter})`] }, run: undefined, owned: false };
    if (!(await exists(paths.stateDir))) reasons.push(await missingStateDirNote(paths, driver));
    else if (lastExit && !lastExit.requested) reasons.push(unrequestedExitNote(paths, lastExit));
    return { status: { ...base, state: settings ? 'stopped' : 'broken' }, run: undefined, owned: false };
  }
  const run = read.value;
  const filled: InstanceStatus = {
    ...base,
    pid: run.pid,
    arch: run.arch ?? hostArch(),
    userland: run.userland ?? null,
    accel: run.accel,
    cores: run.cores,
    memoryMiB: run.memoryMiB,
    systems: run.systems,
    ssh: sshStatusOf(paths, run.ssh),
    shares: run.shares ?? '9p',
    startedAt: run.startedAt,
    bootSeconds: run.bootSeconds,
  };
  const owned = (await isAlive(run.pid)) && (await driver.ownsProcess(run.pid, driver.control(paths.runtimeDir)).catch(() => false));
  if (!owned) {
    const recorded = lastExit?.pid === run.pid ? lastExit : undefined;
    const why = (await isAlive(run.pid))
      ? `stale pid ${run.pid} now belongs to another program`
      : run.phase === 'starting'
        ? `a start was interrupted (pid ${run.pid} is gone)`
        : recorded
          ? recorded.requested
            ? `the VM (pid ${run.pid}) exited at ${recorded.at}: ${recorded.reason}`
            : unrequestedExitNote(paths, recorded)
          : `the VM (pid ${run.pid}) exited without "stop"; its console: ${paths.consoleLog}`;
    return { status: { ...filled, state: 'stopped', pid: null, reasons: [...reasons, why] }, run, owned: false };
  }
  if (run.phase === 'starting') {
    if (starter !== undefined) return { status: { ...filled, state: 'starting' }, run, owned };
    return {
      status: { ...filled, state: 'broken', reasons: [...reasons, `the start that launched pid ${run.pid} died before it was ready; run "linux-builder --name ${paths.name} stop"`] },
      run,
      owned,
    };
  }
  return { status: { ...filled, state: 'running' }, run, owned };
}

function unrequestedExitNote(paths: InstancePaths, exit: LastExit): string {
  return `the VM (pid ${exit.pid}) exited without "stop" at ${exit.at}: ${exit.reason}; its console: ${paths.consoleLog}`;
}

/**
 * What to do about a state.json that does not parse, depending on whether a VM of the instance
 * still runs (vms: its pids; undefined when processes could not be listed).
 */
export function corruptStateAdvice(paths: InstancePaths, problem: string, vms: readonly number[] | undefined): string {
  const cli = `linux-builder --name ${paths.name}`;
  if (vms === undefined) return `${problem}; cannot tell whether its VM still runs (processes cannot be listed): stop it if it does, then remove ${paths.state}`;
  if (vms.length > 0) return `${problem}, and the VM still runs (pid ${vms.join(', ')}): "${cli} stop --force" stops it and removes the file`;
  return `${problem}; no VM of this instance runs: "${cli} start" replaces the file (or remove it: rm ${paths.state})`;
}

/** No state dir: never started, or removed; a VM left running without it is named. */
async function missingStateDirNote(paths: InstancePaths, driver: Driver): Promise<string> {
  const cli = `linux-builder --name ${paths.name}`;
  const vms = await driver.findProcesses(driver.control(paths.runtimeDir)).catch(() => []);
  if (vms.length > 0) return `${paths.stateDir} does not exist, but a VM of this instance still runs (pid ${vms.join(', ')}): "${cli} stop --force" stops it`;
  return `${paths.stateDir} does not exist: the builder never started, or its files were removed; "${cli} start" creates them with new keys (then run "${cli} nix-config --install" again)`;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Never throws: whatever is wrong becomes state "broken" with reasons. */
export async function status(name: string): Promise<InstanceStatus> {
  const paths = instancePaths(name);
  const driver = selectDriver();
  try {
    return (await observe(paths, driver)).status;
  } catch (error) {
    return {
      name,
      state: 'broken',
      pid: null,
      driver: driver.name,
      arch: hostArch(),
      userland: null,
      accel: null,
      cores: null,
      memoryMiB: null,
      systems: [],
      ssh: null,
      shares: null,
      startedAt: null,
      bootSeconds: null,
      stateDir: paths.stateDir,
      agent: null,
      disk: null,
      lastExit: null,
      reasons: [`cannot read the instance's state: ${(error as Error).message}`],
    };
  }
}
