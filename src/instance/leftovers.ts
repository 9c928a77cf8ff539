/**
 * What a VM leaves when it exits: its run files (state.json, pid file, control socket), ssh's
 * shared connection to it, and the record of how it ended. Cleared before a boot, after a stop,
 * and when the agent sees its VM exit.
 */
import { rm } from 'node:fs/promises';
import { failed } from '../errors.js';
import { selectDriver } from '../drivers/index.js';
import type { Driver } from '../drivers/driver.js';
import { isAlive } from '../drivers/process.js';
import type { Reporter } from './reporter.js';
import { acquireLock } from '../fs/lock.js';
import { instancePaths, type InstancePaths } from './paths.js';
import { readRunState, type RunState } from './state.js';
import { corruptStateAdvice, type Observed } from './status.js';
import { recordUnrequestedExit, type LastExit } from './last-exit.js';
import { closeSharedConnection } from './ssh-access.js';

/** A start holds the instance lock for a whole boot. */
const settleLockWaitMs = 10 * 60_000;

/**
 * Before a boot: what the last VM left (its dead pid's run files, a corrupt state.json) is
 * recorded and removed. A VM of the instance that runs although state.json does not say so
 * (corrupt or removed) refuses the start: a second VM would share its disk.
 */
export async function clearLeftovers(paths: InstancePaths, driver: Driver, seen: Observed, reporter: Reporter): Promise<void> {
  const read = await readRunState(paths.state);
  if (read.kind === 'ok') {
    if (seen.run) await recordVanishedVm(paths, seen.run);
  } else {
    const vms = await driver.findProcesses(driver.control(paths.runtimeDir)).catch(() => undefined);
    if (read.kind === 'corrupt') {
      if (vms === undefined || vms.length > 0) throw failed(`cannot start builder "${paths.name}": ${read.reason}`, corruptStateAdvice(paths, read.reason, vms));
      reporter.info(`${read.reason}; no VM of builder "${paths.name}" runs, so it is replaced`);
    } else if (vms !== undefined && vms.length > 0) {
      throw failed(
        `a VM of builder "${paths.name}" still runs (pid ${vms.join(', ')}) although ${paths.state} is missing`,
        `stop it with "linux-builder --name ${paths.name} stop --force", then start again`,
      );
    }
  }
  await closeSharedConnection(paths);
  await clearRunFiles(paths, driver);
}

/** A VM found gone without a stop: its exit is recorded, unless a stop or the agent already did. */
export async function recordVanishedVm(paths: InstancePaths, run: RunState): Promise<void> {
  await recordUnrequestedExit(paths.lastExit, {
    pid: run.pid,
    at: new Date().toISOString(),
    reason: run.phase === 'starting' ? 'its start was interrupted' : 'the VM process was gone (killed, crashed, or the host restarted)',
  }).catch(() => undefined); // only informs: never in the way of a start or stop
}

/**
 * A VM that exited without a stop, as the agent saw it: its exit is recorded and its run files
 * removed, under the instance lock so a start in progress is never touched. Returns the record,
 * which is a stop's own when a stop asked for this exit.
 */
export async function settleExitedVm(name: string, exit: Omit<LastExit, 'requested'>): Promise<LastExit> {
  const paths = instancePaths(name);
  const recorded = await recordUnrequestedExit(paths.lastExit, exit);
  const lock = await acquireLock(paths.lock, { timeoutMs: settleLockWaitMs });
  try {
    const read = await readRunState(paths.state);
    if (read.kind === 'ok' && read.value.pid === exit.pid && !(await isAlive(exit.pid))) {
      await closeSharedConnection(paths);
      await clearRunFiles(paths, selectDriver());
    }
  } finally {
    await lock.release();
  }
  return recorded;
}

/** state.json and the driver's control files (its sockets, its pid file), once the VM is gone. */
export async function clearRunFiles(paths: InstancePaths, driver: Driver): Promise<void> {
  await Promise.all([rm(paths.state, { force: true }), driver.clearControl(driver.control(paths.runtimeDir))]);
}
