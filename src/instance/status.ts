/**
 * Status, computed from the state files and process checks: what `status` prints and what
 * start, stop and the agent decide from. Never throws to its callers: a broken instance is
 * state "broken" with reasons.
 */
import { UserError } from '../errors.js';
import type { Settings } from '../config/settings.js';
import { selectDriver } from '../drivers/index.js';
import type { Driver } from '../drivers/driver.js';
import { isAlive } from '../drivers/process.js';
import { readAgentStatus, type AgentStatus } from '../agent/agent-state.js';
import { hostAlias } from '../ssh/config.js';
import { diskUsage, type DiskUsage } from './disk.js';
import { lockHolder } from './lock.js';
import { instancePaths, type InstancePaths } from './paths.js';
import { guestUser, loadSettings } from './identity.js';
import { readRunState, type RunState } from './state.js';

export type InstanceState = 'stopped' | 'starting' | 'running' | 'broken';

export interface InstanceStatus {
  name: string;
  state: InstanceState;
  pid: number | null;
  driver: string;
  accel: string | null;
  cores: number | null;
  memoryMiB: number | null;
  systems: string[];
  ssh: { host: string; port: number; user: string; hostKeyAlias: string } | null;
  startedAt: string | null;
  bootSeconds: number | null;
  stateDir: string;
  /** The on-demand agent serving this instance, when one runs. */
  agent: AgentStatus | null;
  /** The instance disk as the host sees it; null before the first start. */
  disk: DiskUsage | null;
  reasons: string[];
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
  const base: InstanceStatus = {
    name: paths.name,
    state: 'stopped',
    pid: null,
    driver: driver.name,
    accel: null,
    cores: settings?.cores ?? null,
    memoryMiB: settings?.memoryMiB ?? null,
    systems: [],
    ssh: settings?.sshPort
      ? { host: '127.0.0.1', port: settings.sshPort, user: guestUser, hostKeyAlias: hostAlias(paths.name) }
      : null,
    startedAt: null,
    bootSeconds: null,
    stateDir: paths.stateDir,
    agent: await readAgentStatus(paths.agentState),
    disk: await diskUsage(paths.disk),
    reasons,
  };
  const read = await readRunState(paths.state);
  const starter = await lockHolder(paths.lock);
  if (read.kind === 'corrupt') {
    reasons.push(`${read.reason}; stop it with "linux-builder --name ${paths.name} stop --force"`);
    return { status: { ...base, state: 'broken' }, run: undefined, owned: false };
  }
  if (read.kind === 'missing') {
    if (starter !== undefined) return { status: { ...base, state: 'starting', reasons: [...reasons, `start in progress (pid ${starter})`] }, run: undefined, owned: false };
    return { status: { ...base, state: settings ? 'stopped' : 'broken' }, run: undefined, owned: false };
  }
  const run = read.value;
  const filled: InstanceStatus = {
    ...base,
    pid: run.pid,
    accel: run.accel,
    cores: run.cores,
    memoryMiB: run.memoryMiB,
    systems: run.systems,
    ssh: { host: '127.0.0.1', port: run.sshPort, user: guestUser, hostKeyAlias: hostAlias(paths.name) },
    startedAt: run.startedAt,
    bootSeconds: run.bootSeconds,
  };
  const owned = (await isAlive(run.pid)) && (await driver.ownsProcess(run.pid, paths).catch(() => false));
  if (!owned) {
    const why = (await isAlive(run.pid))
      ? `stale pid ${run.pid} now belongs to another program`
      : run.phase === 'running'
        ? `the VM (pid ${run.pid}) exited without "stop"; its console: ${paths.consoleLog}`
        : `a start was interrupted (pid ${run.pid} is gone)`;
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
      accel: null,
      cores: null,
      memoryMiB: null,
      systems: [],
      ssh: null,
      startedAt: null,
      bootSeconds: null,
      stateDir: paths.stateDir,
      agent: null,
      disk: null,
      reasons: [`cannot read the instance's state: ${(error as Error).message}`],
    };
  }
}
