/**
 * The one orchestration path for every driver: lock, state check, kernel and image, launch,
 * readiness, rollback; stop; status. Drivers only launch, inspect and kill their hypervisor.
 */
import { readFile, rm, stat } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { failed, badInput, UserError } from '../errors.js';
import { applyFlags, guestArchOf, type Settings, type SettingsFlags } from '../config/settings.js';
import { selectDriver } from '../drivers/index.js';
import type { Driver, ExitInfo, LaunchPlan, RunningVm } from '../drivers/driver.js';
import { isAlive, waitForExit } from '../drivers/process.js';
import { ensureGuestImage } from '../guest/image.js';
import { failedMarker, guestShareFiles, readyMarker, shareTags } from '../guest/layout.js';
import { guestPaths } from '../guest/init.js';
import { chooseUserland, debianGuestUserland, hostUserland, type GuestUserland, type UserlandDecision } from '../guest/userland.js';
import { progressLine } from '../debian/index.js';
import { hostArch, hostTscKhz } from '../platform/host.js';
import { publicKeyBlob } from '../ssh/keys.js';
import { hostAlias } from '../ssh/config.js';
import { sshExec, type SshTarget } from '../ssh/client.js';
import { NotReady, rungDescriptions, waitUntilReady, type Rung } from '../ssh/readiness.js';
import { writingTo } from '../fs/files.js';
import { ensurePrivateDir } from '../fs/private-dir.js';
import { applyDiskDecision, decideDisk, diskBytes, type DiskDecision } from './disk.js';
import { writeGuestShare } from './guest-share.js';
import { acquireLock } from '../fs/lock.js';
import { checkSocketPath, instancePaths, type InstancePaths } from './paths.js';
import { describePortHolder, isPortFree } from './ports.js';
import { ensureIdentity, guestUser, loadSettings, saveSettings } from './identity.js';
import { readRunState, writeRunState, runStateVersion, type RunState } from './state.js';
import { corruptStateAdvice, observe, type InstanceStatus, type Observed } from './status.js';
import { recordUnrequestedExit, writeLastExit, type LastExit } from './last-exit.js';
import { binfmtLines, gcThresholds, guestNixConf, instanceSystems } from './guest-config.js';
import { hostNixSettings } from '../nix/host-nix.js';
import { reachableSubstituters } from '../nix/substituters.js';
import { writeMachinesFile } from '../nix/registration.js';
import { HostStoreUnreadable, StoreSync, type SyncResult } from '../nix/store-sync.js';

export type Phase = 'waiting for another start' | 'preparing userland' | 'preparing kernel' | 'building image' | 'booting' | 'waiting for SSH' | 'registering host store paths';

export interface Reporter {
  /** A new phase of a long operation began. */
  phase(phase: Phase): void;
  /** A line the user should see (e.g. why TCG was chosen). */
  info(line: string): void;
  /** Detail shown with --verbose. */
  detail(line: string): void;
  /** How far a long step is (the first fetch of Debian's packages), replacing the last such line. */
  progress?(line: string): void;
}

export const silentReporter: Reporter = { phase() {}, info() {}, detail() {} };

const consoleTailLines = 20;
const gracefulStopMs = 30_000;
/** A start holds the instance lock for a whole boot. */
const settleLockWaitMs = 10 * 60_000;

export { status, type InstanceState, type InstanceStatus } from './status.js';

// ---------------------------------------------------------------------------------------------
// settings

async function checkKernelFlag(path: string | undefined): Promise<void> {
  if (path === undefined) return;
  const info = await stat(path).catch(() => undefined);
  if (!info?.isFile()) {
    throw badInput(`--kernel ${path}: no such file`, 'give the path of a Linux kernel image (bzImage/vmlinuz or vmlinux)');
  }
}

// ---------------------------------------------------------------------------------------------
// start

export interface StartResult {
  readonly alreadyRunning: boolean;
  readonly status: InstanceStatus;
  /** Settings changed while running: they apply at the next start. */
  readonly pendingSettings: boolean;
  /** Resolves when the VM this call launched exits (absent when it was running already). */
  readonly exited?: Promise<ExitInfo>;
}

export class BootFailure extends UserError {
  constructor(
    readonly rung: Rung,
    detail: string,
    readonly consoleTail: string[],
    consoleLog: string,
  ) {
    super(`the guest did not become ready: rung "${rung}" (${rungDescriptions[rung]}) failed: ${detail}`, {
      exitCode: 1,
      hint:
        consoleTail.length === 0
          ? `the console is empty: the kernel printed nothing (full console: ${consoleLog})`
          : `last ${consoleTail.length} console lines (full console: ${consoleLog}):\n${consoleTail.map((l) => `  | ${l}`).join('\n')}`,
    });
  }
}

export async function consoleTail(path: string, lines = consoleTailLines): Promise<string[]> {
  const text = await readFile(path, 'latin1').catch(() => '');
  return text
    .replace(/\r/g, '')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .slice(-lines);
}

export async function sshTarget(paths: InstancePaths, port: number): Promise<SshTarget> {
  const [privateKey, hostKeyPub] = await Promise.all([
    readFile(paths.clientKey, 'utf8'),
    readFile(join(paths.guestShare, 'ssh_host_ed25519_key.pub'), 'utf8'),
  ]);
  return { host: '127.0.0.1', port, user: guestUser, privateKey, hostKeyBlob: publicKeyBlob(hostKeyPub) };
}

/** The kept port must be free now; who holds it is named when it is not. */
async function checkPortFree(paths: InstancePaths, port: number): Promise<void> {
  if (await isPortFree(port)) return;
  const holder = await describePortHolder(port);
  throw failed(
    `port ${port} on 127.0.0.1, kept for instance "${paths.name}", is taken by ${holder ?? 'another program'}`,
    `stop that program, or delete "sshPort" from ${paths.config} to pick a new port (then run nix-config --install again)`,
  );
}

export interface StartOptions {
  /** Keeps the guest's Nix database in step with the host store; a fresh one when absent. */
  readonly storeSync?: StoreSync;
}

export async function start(name: string, flags: SettingsFlags, reporter: Reporter = silentReporter, options: StartOptions = {}): Promise<StartResult> {
  const paths = instancePaths(name);
  checkSocketPath(paths.qmpSocket);
  const driver = selectDriver();
  // Validate everything the user typed before writing anything.
  const remembered = await loadSettings(paths);
  const settings = applyFlags(remembered, flags);
  await checkKernelFlag(flags.kernel);
  const arch = guestArchOf(settings);
  const userland = await chooseUserland(settings.userland, { cacheDir: paths.cacheDir, arch, explicitKernel: settings.kernel });
  if (userland.kind === 'host') {
    // Debian's packages are checked once fetched, under the lock
    await hostUserland().checkEmulators(instanceSystems(settings.systems, arch), arch);
    await hostUserland().checkIpTool();
  }
  // Refuses a shrink before anything is written; decided again under the lock before launch.
  decideDisk({ currentBytes: await diskBytes(paths.disk), wantedMiB: settings.diskSizeMiB, ephemeral: settings.ephemeral, explicit: flags.diskSize !== undefined });

  await ensurePrivateDir(paths.runtimeDir);
  await ensurePrivateDir(paths.stateDir);
  await ensurePrivateDir(paths.cacheDir);
  const lock = await acquireLock(paths.lock, {
    timeoutMs: settings.bootTimeoutMs + 120_000,
    onWait: () => reporter.phase('waiting for another start'),
  });
  try {
    const seen = await observe(paths, driver);
    if (seen.owned) {
      const pending = JSON.stringify(settings) !== JSON.stringify(remembered);
      if (pending) await saveSettings(paths, settings);
      return { alreadyRunning: true, status: seen.status, pendingSettings: pending };
    }
    await clearLeftovers(paths, driver, seen, reporter);
    // Settings given now are remembered for the next start, as when the VM runs already.
    if (JSON.stringify(settings) !== JSON.stringify(remembered)) await saveSettings(paths, settings);
    const disk = decideDisk({
      currentBytes: await diskBytes(paths.disk),
      wantedMiB: settings.diskSizeMiB,
      ephemeral: settings.ephemeral,
      explicit: flags.diskSize !== undefined,
    });
    return await boot(paths, driver, settings, userland, disk, reporter, options.storeSync ?? storeSyncFor(paths));
  } finally {
    await lock.release();
  }
}

async function boot(
  paths: InstancePaths,
  driver: Driver,
  settings: Settings,
  decision: UserlandDecision,
  disk: DiskDecision,
  reporter: Reporter,
  storeSync: StoreSync,
): Promise<StartResult> {
  const t0 = Date.now();
  const identity = await ensureIdentity(paths, settings);
  if (identity.newKeys) {
    reporter.info(
      `builder "${paths.name}" has new SSH keys (its first start, its state dir was removed, or its stored keys were not valid OpenSSH): if Nix used it before, run "linux-builder --name ${paths.name} nix-config --install" again`,
    );
  }
  const port = identity.endpoint.port;
  await checkPortFree(paths, port);
  // Probed while the kernel and image are prepared; offline hosts answer in milliseconds.
  const substituters = hostNixSettings()
    .then((host) => reachableSubstituters(host.substituters))
    .catch(() => []);
  const arch = guestArchOf(settings);
  const accel = await driver.chooseAccel(settings.accel, arch);
  if (accel.accel === 'tcg' || settings.accel === 'auto') reporter.info(accel.reason);

  const systems = instanceSystems(settings.systems, arch);
  reporter.phase('preparing userland');
  const userland = await prepareUserland(paths, settings, decision, systems, reporter);

  reporter.phase('preparing kernel');
  const kernel = await userland.kernel({ explicit: settings.kernel, cacheDir: paths.cacheDir, log: reporter.detail });
  const bootKernel = await writingTo(join(paths.cacheDir, 'kernels'), () => driver.prepareKernel(kernel.image, paths.cacheDir, arch), {
    what: `unpacking kernel ${kernel.version} into kernels/`,
  });
  reporter.detail(`kernel ${kernel.version} (${kernel.source}): ${bootKernel.path} [${bootKernel.format}]`);
  if (kernel.modulesDir === undefined) {
    throw failed(
      `no kernel modules found for kernel ${kernel.version} (${kernel.image})`,
      `the guest needs its virtio, 9p and overlay modules: install them under /lib/modules/${kernel.version}, or use another --kernel`,
    );
  }

  reporter.phase('building image');
  await writeGuestShare(paths.guestShare, {
    hostKey: await readFile(join(paths.guestShare, guestShareFiles.hostKey), 'utf8'),
    hostKeyPub: identity.hostPublicKey,
    authorizedKeys: await readFile(paths.clientKeyPub, 'utf8'),
    nixConf: guestNixConf({ systems, arch, cores: settings.cores, substituters: await substituters }),
    binfmt: binfmtLines(systems, arch, userland.emulator),
    hostname: `linux-builder-${paths.name}`,
    disk: gcThresholds(disk.sizeMiB),
  });
  await writingTo(paths.disk, () => applyDiskDecision(paths.disk, disk));
  reporter.detail(`disk ${paths.disk}: ${disk.action} (${disk.sizeMiB} MiB)`);
  await writeMachinesFile(paths, identity, { systems, cores: settings.cores });
  const image = await ensureGuestImage({
    modulesDir: kernel.modulesDir,
    kernelVersion: kernel.version,
    arch,
    cacheDir: paths.cacheDir,
    userland,
    log: reporter.detail,
  });
  reporter.detail(`initramfs ${image.built ? 'built' : 'cached'}: ${image.path}`);

  reporter.phase('booting');
  const plan: LaunchPlan = {
    name: paths.name,
    hostArch: hostArch(),
    guestArch: arch,
    accel: accel.accel,
    cores: settings.cores,
    memoryMiB: settings.memoryMiB,
    kernel: bootKernel,
    initrd: image.path,
    kernelArgs: ['panic=-1', 'quiet'],
    shares: [
      { tag: shareTags.usr, hostPath: userland.usr },
      { tag: shareTags.store, hostPath: '/nix/store' },
      { tag: shareTags.config, hostPath: paths.guestShare },
    ],
    // An ephemeral disk is wiped at the next start anyway: the guest's flushes need not reach the host's disk.
    disk: { path: paths.disk, cache: settings.ephemeral ? 'unsafe' : 'writeback' },
    sshPort: port,
    tscKhz: arch === 'x86_64' && hostArch() === 'x86_64' ? await hostTscKhz() : undefined,
    consoleLog: paths.consoleLog,
    processLog: paths.processLog,
    qmpSocket: paths.qmpSocket,
    pidFile: paths.pidFile,
  };
  const launchStarted = Date.now();
  const vm = await driver.launch(plan);
  const run: RunState = {
    version: runStateVersion,
    phase: 'starting',
    pid: vm.pid,
    driver: driver.name,
    arch,
    accel: accel.accel,
    accelReason: accel.reason,
    cores: settings.cores,
    memoryMiB: settings.memoryMiB,
    systems,
    sshPort: port,
    startedAt: new Date(launchStarted).toISOString(),
    bootSeconds: null,
    kernel: bootKernel.path,
    initrd: image.path,
    userland: userland.summary,
  };
  const rollback = (): void => {
    try {
      process.kill(vm.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  process.once('exit', rollback);
  try {
    await writeRunState(paths.state, run);
    reporter.phase('waiting for SSH');
    await waitForReady(paths, vm, port, launchStarted + settings.bootTimeoutMs, reporter);
  } catch (error) {
    await driver.forceStop(vm.pid, plan, 10_000).catch(() => rollback());
    await clearRunFiles(paths);
    await recordUnrequestedExit(paths.lastExit, {
      pid: vm.pid,
      at: new Date().toISOString(),
      reason: error instanceof NotReady ? `its boot failed at rung "${error.rung}"` : `its boot failed: ${(error as Error).message}`,
    }).catch(() => undefined);
    if (error instanceof NotReady) {
      throw new BootFailure(error.rung, error.message, await bootDiagnostics(paths), paths.consoleLog);
    }
    throw error;
  } finally {
    process.removeListener('exit', rollback);
  }
  const bootSeconds = Math.round((Date.now() - launchStarted) / 10) / 100;
  await writeRunState(paths.state, { ...run, phase: 'running', bootSeconds });
  await registerHostStore(storeSync, reporter);
  reporter.detail(`total start time ${((Date.now() - t0) / 1000).toFixed(2)} s`);
  const seen = await observe(paths, driver);
  return { alreadyRunning: false, status: seen.status, pendingSettings: false, exited: vm.exited };
}

/** The host's /usr, or Debian's packages (fetched at the first start, with progress), checked for what the guest runs. */
async function prepareUserland(
  paths: InstancePaths,
  settings: Settings,
  decision: UserlandDecision,
  systems: readonly string[],
  reporter: Reporter,
): Promise<GuestUserland> {
  if (decision.kind === 'debian' && settings.userland === 'auto') reporter.info(decision.reason);
  else reporter.detail(decision.reason);
  if (decision.kind === 'host') return hostUserland();
  const userland = await debianGuestUserland({
    arch: guestArchOf(settings),
    cacheDir: paths.cacheDir,
    systems,
    mirror: settings.mirror,
    instance: paths.stateDir,
    onProgress: (progress) => reporter.progress?.(progressLine(progress)),
    log: reporter.detail,
  });
  await userland.checkEmulators(systems, guestArchOf(settings));
  await userland.checkIpTool();
  reporter.detail(`userland: ${userland.description} (${userland.usr})`);
  return userland;
}

async function waitForReady(paths: InstancePaths, vm: RunningVm, port: number, deadline: number, reporter: Reporter): Promise<void> {
  const target = await sshTarget(paths, port);
  await waitUntilReady({
    target,
    deadline,
    exited: vm.exited,
    onRung: (rung) => reporter.detail(`ready rung: ${rung}`),
    guestFailure: () => guestReportedFailure(paths.consoleLog),
    guestReady: () => guestReportedReady(paths.consoleLog),
  });
}

/** The guest's init prints the ready line once sshd listens and the store and binfmt are set up. */
async function guestReportedReady(consoleLog: string): Promise<boolean> {
  const text = await readFile(consoleLog, 'latin1').catch(() => '');
  return text.includes(readyMarker);
}

/** The reason after the failure marker the guest's init prints when it gives up. */
async function guestReportedFailure(consoleLog: string): Promise<string | undefined> {
  const text = await readFile(consoleLog, 'latin1').catch(() => '');
  const at = text.lastIndexOf(`${failedMarker}: `);
  if (at < 0) return undefined;
  return text.slice(at + failedMarker.length + 2).split(/\r?\n/)[0]?.trim();
}

/** ssh through the instance's own config (pinned key, shared connection). */
export function storeSyncFor(paths: InstancePaths, onRegistered?: (result: SyncResult) => void): StoreSync {
  return new StoreSync(['ssh', '-F', paths.sshConfig, hostAlias(paths.name)], onRegistered);
}

/**
 * Zero-copy inputs: the guest's Nix learns the host's valid paths. Not fatal: without it,
 * Nix copies inputs over SSH as every other builder does.
 */
async function registerHostStore(storeSync: StoreSync, reporter: Reporter): Promise<void> {
  if (process.env.LINUX_BUILDER_SKIP_STORE_SYNC === '1') return;
  storeSync.forget();
  reporter.phase('registering host store paths');
  try {
    const result = await storeSync.sync();
    reporter.detail(`registered ${result.registered} host store paths in the guest's Nix database in ${result.seconds.toFixed(2)} s`);
  } catch (error) {
    const consequence = error instanceof HostStoreUnreadable ? 'linux-builder doctor says what this user needs' : 'Nix will copy inputs instead';
    reporter.info(`warning: host store paths are not registered in the guest: ${(error as Error).message}; ${consequence}`);
  }
}

/** The console tail, and the hypervisor's own complaints when it wrote any. */
async function bootDiagnostics(paths: InstancePaths): Promise<string[]> {
  const consoleLines = await consoleTail(paths.consoleLog);
  const vmLines = await consoleTail(paths.processLog, 5);
  return vmLines.length > 0 ? [...consoleLines, ...vmLines.map((line) => `[vm] ${line}`)] : consoleLines;
}

/** Ends ssh's shared connection (ControlMaster) to the VM, so no ssh process outlives it. */
async function closeSharedConnection(paths: InstancePaths): Promise<void> {
  if (!(await stat(paths.controlSocket).catch(() => undefined))) return;
  await new Promise<void>((resolve) => {
    execFile('ssh', ['-F', paths.sshConfig, '-O', 'exit', hostAlias(paths.name)], { timeout: 5000 }, () => resolve());
  });
  await rm(paths.controlSocket, { force: true });
}

/**
 * Before a boot: what the last VM left (its dead pid's run files, a corrupt state.json) is
 * recorded and removed. A VM of the instance that runs although state.json does not say so
 * (corrupt or removed) refuses the start: a second VM would share its disk.
 */
async function clearLeftovers(paths: InstancePaths, driver: Driver, seen: Observed, reporter: Reporter): Promise<void> {
  const read = await readRunState(paths.state);
  if (read.kind === 'ok') {
    if (seen.run) await recordVanishedVm(paths, seen.run);
  } else {
    const vms = await driver.findProcesses(paths).catch(() => undefined);
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
  await clearRunFiles(paths);
}

/** A VM found gone without a stop: its exit is recorded, unless a stop or the agent already did. */
async function recordVanishedVm(paths: InstancePaths, run: RunState): Promise<void> {
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
      await clearRunFiles(paths);
    }
  } finally {
    await lock.release();
  }
  return recorded;
}

async function clearRunFiles(paths: InstancePaths): Promise<void> {
  await Promise.all([paths.state, paths.pidFile, paths.qmpSocket].map((file) => rm(file, { force: true })));
}

// ---------------------------------------------------------------------------------------------
// stop

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
  const driver = selectDriver();
  const requestedBy = options.requestedBy ?? `"linux-builder stop${options.force ? ' --force' : ''}"`;
  const seen = await observe(paths, driver);
  if (!seen.owned || !seen.run) return stopUnlisted(paths, driver, seen, requestedBy);
  const { pid, sshPort } = seen.run;
  // Marked first, so whoever sees this VM exit (the agent) knows it was asked to.
  await noteRequestedExit(paths, pid, `stop requested by ${requestedBy}`);
  let graceful = false;
  if (!options.force) {
    reporter.detail('asking the guest to power off over SSH');
    try {
      const target = await sshTarget(paths, sshPort);
      // busybox's poweroff (the host /usr's would call systemctl); it may cut the connection
      // before it reports, so only the process exit counts.
      await sshExec(target, `${guestPaths.busyboxDir}/poweroff`, 5000).catch(() => undefined);
      graceful = await waitForExit(pid, gracefulStopMs);
    } catch (error) {
      reporter.detail(`graceful stop failed: ${(error as Error).message}`);
    }
  }
  if (!graceful) {
    reporter.detail(options.force ? 'killing the VM' : 'the guest did not power off in time; killing the VM');
    await driver.forceStop(pid, paths, 10_000);
  }
  if ((await isAlive(pid)) && (await driver.ownsProcess(pid, paths).catch(() => false))) {
    throw failed(`the VM (pid ${pid}) is still running after stop`, `kill it: kill -9 ${pid}`);
  }
  const reason = graceful
    ? `powered off by ${requestedBy}`
    : options.force
      ? `killed by ${requestedBy}`
      : `killed by ${requestedBy}: the guest did not power off within ${gracefulStopMs / 1000} s`;
  await noteRequestedExit(paths, pid, reason);
  await closeSharedConnection(paths);
  await clearRunFiles(paths);
  return { wasRunning: true, graceful };
}

/**
 * The state files name no live VM: a dead one's exit is recorded; a VM of the instance that
 * runs anyway (state.json corrupt or removed) is found by its command line and killed, so no
 * process of the instance is left.
 */
async function stopUnlisted(paths: InstancePaths, driver: Driver, seen: Observed, requestedBy: string): Promise<StopResult> {
  const strays = await driver.findProcesses(paths).catch(() => []);
  for (const pid of strays) {
    await noteRequestedExit(paths, pid, `killed by ${requestedBy} (the state files did not name it)`);
    await driver.forceStop(pid, paths, 10_000);
  }
  if (seen.run && strays.length === 0) await recordVanishedVm(paths, seen.run);
  await closeSharedConnection(paths);
  await clearRunFiles(paths);
  return { wasRunning: strays.length > 0, graceful: false };
}

/** The record only informs: a stop goes on without it (e.g. the state dir was removed). */
async function noteRequestedExit(paths: InstancePaths, pid: number, reason: string): Promise<void> {
  await writeLastExit(paths.lastExit, { pid, at: new Date().toISOString(), requested: true, reason }).catch(() => undefined);
}
