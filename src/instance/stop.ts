/**
 * Stopping an instance: the guest powers itself off cleanly (at most 30 s), asked through its
 * power button where the hypervisor has one the guest listens to, else (or when it did not power
 * off in time) over SSH; then the driver stops its VM hard. A VM the state files do not name is
 * found by its command line and killed.
 */
import { failed } from '../errors.js';
import { instanceDriver } from './driver-of.js';
import type { Driver } from '../drivers/driver.js';
import { isAlive, waitForExit } from '../drivers/process.js';
import { guestPaths } from '../guest/init.js';
import { sshExec } from '../ssh/client.js';
import { silentReporter, type Reporter } from './reporter.js';
import { instancePaths, type InstancePaths } from './paths.js';
import { observe, type Observed } from './status.js';
import { writeLastExit } from './last-exit.js';
import { clearRunFiles, recordVanishedVm } from './leftovers.js';
import { closeSharedConnection, sshTarget } from './ssh-access.js';
import type { SshEndpoint } from '../ssh/endpoint.js';

const gracefulStopMs = 30_000;
/** How long a press of the power button may take before the guest is asked over SSH instead. */
const powerButtonMs = 15_000;

export interface StopResult {
  readonly wasRunning: boolean;
  readonly graceful: boolean;
}

export interface StopOptions {
  readonly force: boolean;
  /** Who asked, for the last-exit record: '"linux-builder stop"' unless the agent says otherwise. */
  readonly requestedBy?: string;
}

export async function stop(name: string, options: StopOptions, reporter: Reporter = silentReporter): Promise<StopResult> {
  const paths = instancePaths(name);
  const driver = await instanceDriver(paths);
  const requestedBy = options.requestedBy ?? `"linux-builder stop${options.force ? ' --force' : ''}"`;
  const seen = await observe(paths, driver);
  if (!seen.owned || !seen.run) return stopUnlisted(paths, driver, seen, requestedBy);
  const { pid, ssh } = seen.run;
  // Marked first, so whoever sees this VM exit (the agent) knows it was asked to.
  await noteRequestedExit(paths, pid, `stop requested by ${requestedBy}`);
  const graceful = options.force ? false : await powerOff(paths, driver, pid, ssh, reporter);
  if (!graceful) {
    reporter.detail(options.force ? 'killing the VM' : 'the guest did not power off in time; killing the VM');
    await driver.forceStop(pid, driver.control(paths.runtimeDir), 10_000);
  }
  if ((await isAlive(pid)) && (await driver.ownsProcess(pid, driver.control(paths.runtimeDir)).catch(() => false))) {
    throw failed(`the VM (pid ${pid}) is still running after stop`, `kill it: kill -9 ${pid}`);
  }
  const reason = graceful
    ? `powered off by ${requestedBy}`
    : options.force
      ? `killed by ${requestedBy}`
      : `killed by ${requestedBy}: the guest did not power off within ${gracefulStopMs / 1000} s`;
  await noteRequestedExit(paths, pid, reason);
  await closeSharedConnection(paths);
  await clearRunFiles(paths, driver);
  return { wasRunning: true, graceful };
}

/** The guest's clean poweroff (shutdown.sh): through its power button, else over SSH; true when the VM exited. */
async function powerOff(paths: InstancePaths, driver: Driver, pid: number, ssh: SshEndpoint, reporter: Reporter): Promise<boolean> {
  const deadline = Date.now() + gracefulStopMs;
  if (await driver.pressPowerButton(pid, driver.control(paths.runtimeDir))) {
    reporter.detail("pressed the guest's power button");
    if (await waitForExit(pid, powerButtonMs)) return true;
    reporter.detail(`the guest did not power off within ${powerButtonMs / 1000} s of its power button`);
  }
  reporter.detail('asking the guest to power off over SSH');
  try {
    const target = sshTarget(paths, ssh);
    // busybox's poweroff (the host /usr's would call systemctl); it may cut the connection
    // before it reports, so only the process exit counts. An emulated guest on a busy host may
    // take several seconds for the key exchange alone: what is left of the budget, not 5 s.
    await sshExec(target, `${guestPaths.busyboxDir}/poweroff`, Math.max(5000, deadline - Date.now())).catch(() => undefined);
    return await waitForExit(pid, Math.max(1000, deadline - Date.now()));
  } catch (error) {
    reporter.detail(`graceful stop failed: ${(error as Error).message}`);
    return false;
  }
}

/**
 * The state files name no live VM: a dead one's exit is recorded; a VM of the instance that
 * runs anyway (state.json corrupt or removed) is found by its command line and killed, so no
 * process of the instance is left.
 */
async function stopUnlisted(paths: InstancePaths, driver: Driver, seen: Observed, requestedBy: string): Promise<StopResult> {
  const strays = await driver.findProcesses(driver.control(paths.runtimeDir)).catch(() => []);
  for (const pid of strays) {
    await noteRequestedExit(paths, pid, `killed by ${requestedBy} (the state files did not name it)`);
    await driver.forceStop(pid, driver.control(paths.runtimeDir), 10_000);
  }
  if (seen.run && strays.length === 0) await recordVanishedVm(paths, seen.run);
  await closeSharedConnection(paths);
  await clearRunFiles(paths, driver);
  return { wasRunning: strays.length > 0, graceful: false };
}

/** The record only informs: a stop goes on without it (e.g. the state dir was removed). */
async function noteRequestedExit(paths: InstancePaths, pid: number, reason: string): Promise<void> {
  await writeLastExit(paths.lastExit, { pid, at: new Date().toISOString(), requested: true, reason }).catch(() => undefined);
}
