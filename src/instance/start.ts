/**
 * Starting an instance: settings checked before anything is written, the instance lock, the
 * userland, kernel and image, the launch, readiness over SSH, and the rollback when the guest
 * never becomes ready; then the host's store paths are registered in the guest.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { badInput, failed, UserError } from '../errors.js';
import type { Settings, SettingsFlags } from '../config/settings.js';
import { selectDriver } from '../drivers/index.js';
import { ShareTransportFailed, type AccelDecision, type Driver, type ExitInfo, type GuestArch, type LaunchPlan, type RunningVm, type ShareTransport, type VmControl } from '../drivers/driver.js';
import { ensureGuestImage, type GuestImage } from '../guest/image.js';
import { guestShareFiles } from '../guest/layout.js';
import { chooseUserland, debianGuestUserland, hostUserland, type GuestUserland, type UserlandDecision } from '../guest/userland.js';
import { progressLine } from '../debian/index.js';
import { hostArch } from '../platform/host.js';
import type { SshEndpoint } from '../ssh/endpoint.js';
import { NotReady, rungDescriptions, waitUntilReady, type Rung } from '../ssh/readiness.js';
import { writingTo } from '../fs/files.js';
import { ensurePrivateDir } from '../fs/private-dir.js';
import { applyDiskDecision, decideDisk, diskBytes, type DiskDecision } from './disk.js';
import { writeGuestShare } from './guest-share.js';
import { acquireLock } from '../fs/lock.js';
import { checkSocketPath, instancePaths, type InstancePaths } from './paths.js';
import { describePortHolder, isPortFree } from './ports.js';
import { ensureIdentity, saveSettings } from './identity.js';
import { guestArchFor, settingsWithFlags } from './settings-flags.js';
import { decideRosetta } from './rosetta.js';
import { guestNetwork } from './network.js';
import { writeRunState, runStateVersion, type RunState } from './state.js';
import { observe, type InstanceStatus } from './status.js';
import { recordUnrequestedExit } from './last-exit.js';
import { binfmtLines, gcThresholds, guestNixConf, instanceSystems } from './guest-config.js';
import { hostNixSettings } from '../nix/host-nix.js';
import { reachableSubstituters } from '../nix/substituters.js';
import { writeNixFiles } from '../nix/registration.js';
import { HostStoreUnreadable, type StoreSync } from '../nix/store-sync.js';
import { silentReporter, type Reporter } from './reporter.js';
import { bootDiagnostics, guestReportedFailure, guestReportedReady } from './console.js';
import { clearLeftovers, clearRunFiles } from './leftovers.js';
import { sshTarget, storeSyncFor } from './ssh-access.js';
import { launchPlan } from './launch-plan.js';

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

/** A kept port must be free now; who holds it is named when it is not. */
async function checkEndpointFree(paths: InstancePaths, endpoint: SshEndpoint): Promise<void> {
  if (endpoint.kind !== 'tcp' || (await isPortFree(endpoint.port))) return;
  const holder = await describePortHolder(endpoint.port);
  throw failed(
    `port ${endpoint.port} on ${endpoint.host}, kept for instance "${paths.name}", is taken by ${holder ?? 'another program'}`,
    `stop that program, or delete "sshPort" from ${paths.config} to pick a new port (then run nix-config --install again)`,
  );
}

/** The driver's sockets and the guest's SSH socket: none may exceed what Node can bind. */
function checkSockets(paths: InstancePaths, driver: Driver): void {
  for (const socket of driver.control(paths.runtimeDir).sockets) checkSocketPath(socket);
  if (driver.capabilities.ssh === 'vsock-socket') checkSocketPath(paths.guestSshSocket);
}

export interface StartOptions {
  /** Keeps the guest's Nix database in step with the host store; a fresh one when absent. */
  readonly storeSync?: StoreSync;
}

/** What start decided before the lock: all of it checked before anything is written. */
interface Checked {
  readonly paths: InstancePaths;
  readonly remembered: Settings;
  readonly settings: Settings;
  readonly driver: Driver;
  readonly userland: UserlandDecision;
}

async function checkStart(name: string, flags: SettingsFlags, options: { dryRun: boolean }): Promise<Checked> {
  const paths = instancePaths(name);
  // Validate everything the user typed before writing anything.
  const { remembered, settings } = await settingsWithFlags(paths, flags);
  const driver = selectDriver(settings.driver, options);
  checkSockets(paths, driver);
  const arch = guestArchFor(settings, driver.capabilities);
  const userland = await chooseUserland(settings.userland, { cacheDir: paths.cacheDir, arch, explicitKernel: settings.kernel });
  if (userland.kind === 'host') {
    // Debian's packages are checked once fetched, under the lock
    await hostUserland().checkEmulators(instanceSystems(settings.systems, arch), arch);
    await hostUserland().checkIpTool();
  }
  return { paths, remembered, settings, driver, userland };
}

export async function start(name: string, flags: SettingsFlags, reporter: Reporter = silentReporter, options: StartOptions = {}): Promise<StartResult> {
  const { paths, remembered, settings, driver, userland } = await checkStart(name, flags, { dryRun: false });
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

export interface DryRun {
  readonly driver: string;
  /** The hypervisor's command line, as start would run it. */
  readonly argv: readonly string[];
}

/**
 * start --dry-run: everything a launch needs is prepared (keys, disk, kernel, guest image, the
 * config share) and the hypervisor's command line returned instead of run. Settings given now
 * are not remembered; a running VM's files are not touched.
 */
export async function dryRun(name: string, flags: SettingsFlags, reporter: Reporter = silentReporter): Promise<DryRun> {
  const { paths, remembered, settings, driver, userland } = await checkStart(name, flags, { dryRun: true });
  await ensurePrivateDir(paths.runtimeDir);
  await ensurePrivateDir(paths.stateDir);
  await ensurePrivateDir(paths.cacheDir);
  const lock = await acquireLock(paths.lock, { timeoutMs: settings.bootTimeoutMs + 120_000, onWait: () => reporter.phase('waiting for another start') });
  try {
    const seen = await observe(paths, driver);
    if (seen.owned) {
      throw failed(`builder "${name}" is running: a dry run would rewrite the disk and files it uses`, `stop it first: linux-builder --name ${name} stop`);
    }
    const disk = decideDisk({ currentBytes: await diskBytes(paths.disk), wantedMiB: settings.diskSizeMiB, ephemeral: settings.ephemeral, explicit: flags.diskSize !== undefined });
    const { planFor, transport, control } = await prepare(paths, driver, { settings, toRemember: remembered, dryRun: true }, userland, disk, reporter);
    return { driver: driver.name, argv: await driver.commandLine(planFor(transport), control) };
  } finally {
    await lock.release();
  }
}

interface Prepared {
  /** The plan over a share transport: the chosen one, or 9p when its daemon fails to start. */
  readonly planFor: (transport: ShareTransport) => LaunchPlan;
  readonly transport: ShareTransport;
  readonly control: VmControl;
  readonly ssh: SshEndpoint;
  readonly arch: GuestArch;
  readonly systems: string[];
  readonly accel: AccelDecision;
  readonly userlandSummary: GuestUserland['summary'];
}

/** Keys, userland, kernel, the config share, the disk, the image: the plan, ready to launch. */
async function prepare(
  paths: InstancePaths,
  driver: Driver,
  wanted: { settings: Settings; toRemember: Settings; dryRun: boolean },
  decision: UserlandDecision,
  disk: DiskDecision,
  reporter: Reporter,
): Promise<Prepared> {
  const control = driver.control(paths.runtimeDir);
  // a dry run remembers none of its flags (a port picked for the instance is kept, as by any start)
  const identity = await ensureIdentity(paths, wanted.toRemember, driver.capabilities);
  const settings: Settings = { ...wanted.settings, ...(identity.settings.sshPort !== undefined ? { sshPort: identity.settings.sshPort } : {}) };
  if (identity.newKeys) {
    reporter.info(
      `builder "${paths.name}" has new SSH keys (its first start, its state dir was removed, or its stored keys were not valid OpenSSH): if Nix used it before, run "linux-builder --name ${paths.name} nix-config --install" again`,
    );
  }
  const ssh = identity.sshHost.endpoint;
  if (!wanted.dryRun) await checkEndpointFree(paths, ssh);
  // Probed while the kernel and image are prepared; offline hosts answer in milliseconds.
  const substituters = hostNixSettings()
    .then((host) => reachableSubstituters(host.substituters))
    .catch(() => []);
  const arch = guestArchFor(settings, driver.capabilities);
  const accel = await driver.chooseAccel(settings.accel, arch);
  if (accel.accel === 'tcg' || settings.accel === 'auto') reporter.info(accel.reason);

  const systems = instanceSystems(settings.systems, arch);
  const { rosetta, note } = await decideRosetta(driver, { wanted: settings.rosetta, arch, systems });
  if (note !== undefined) (rosetta === undefined ? reporter.info : reporter.detail)(note);
  reporter.phase('preparing userland');
  const vsock = driver.capabilities.ssh === 'vsock-socket';
  const userland = await prepareUserland(paths, settings, decision, systems, arch, vsock, reporter);

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
    nixConf: guestNixConf({ systems, arch, cores: settings.cores, substituters: await substituters, rosetta: rosetta !== undefined }),
    binfmt: binfmtLines(systems, arch, userland.emulator, rosetta !== undefined),
    hostname: `linux-builder-${paths.name}`,
    disk: gcThresholds(disk.sizeMiB),
    rosetta: rosetta !== undefined,
  });
  await writingTo(paths.disk, () => applyDiskDecision(paths.disk, disk));
  reporter.detail(`disk ${paths.disk}: ${disk.action} (${disk.sizeMiB} MiB)`);
  // what Nix and ssh read follows real starts only
  if (!wanted.dryRun) await writeNixFiles(paths, identity, { systems, cores: settings.cores });
  const image = await ensureGuestImage({
    modulesDir: kernel.modulesDir,
    kernelVersion: kernel.version,
    arch,
    cacheDir: paths.cacheDir,
    userland,
    log: reporter.detail,
  });
  reporter.detail(`initramfs ${image.built ? 'built' : 'cached'}: ${image.path}`);

  const transport = await chooseShares(driver, image, reporter);
  const planned = {
    paths,
    hostArch: hostArch(),
    guestArch: arch,
    accel: accel.accel,
    cores: settings.cores,
    memoryMiB: settings.memoryMiB,
    kernel: bootKernel,
    initrd: image.path,
    usr: userland.usr,
    network: guestNetwork(driver.capabilities.network),
    ssh,
    ephemeral: settings.ephemeral,
    rosetta,
  };
  const planFor = (chosen: ShareTransport): LaunchPlan => launchPlan({ ...planned, transport: chosen });
  return { planFor, transport, control, ssh, arch, systems, accel, userlandSummary: userland.summary };
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
  const { planFor, transport: wanted, control, ssh, arch, systems, accel, userlandSummary } = await prepare(paths, driver, { settings, toRemember: settings, dryRun: false }, decision, disk, reporter);
  reporter.phase('booting');
  // The last VM's console still says it was ready (or failed): the hypervisor truncates the file
  // only once it opens it, and a readiness poll before that would take the old marker for this boot.
  await rm(paths.consoleLog, { force: true });
  const launchStarted = Date.now();
  const { vm, transport } = await launchSharing(driver, control, planFor, wanted, reporter);
  const plan = planFor(transport);
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
    ssh,
    shares: transport,
    startedAt: new Date(launchStarted).toISOString(),
    bootSeconds: null,
    kernel: plan.kernel.path,
    initrd: plan.initrd,
    userland: userlandSummary,
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
    await waitForReady(paths, vm, ssh, launchStarted + settings.bootTimeoutMs, reporter);
  } catch (error) {
    await driver.forceStop(vm.pid, control, 10_000).catch(() => rollback());
    await clearRunFiles(paths, driver);
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

/**
 * The best share transport the driver can use on this host now and the guest's kernel can mount;
 * the start says why when it is not the driver's best (9p where virtiofsd is missing).
 */
async function chooseShares(driver: Driver, image: GuestImage, reporter: Reporter): Promise<ShareTransport> {
  const forced = forcedShares(process.env.LINUX_BUILDER_SHARES);
  if (forced !== undefined) {
    if (!image.shareTransports.includes(forced)) throw failed(`LINUX_BUILDER_SHARES=${forced}: the guest's kernel has no ${forced} module`, 'unset LINUX_BUILDER_SHARES');
    reporter.detail(`shares: ${forced} (LINUX_BUILDER_SHARES)`);
    return forced;
  }
  const support = await driver.shareSupport();
  const chosen = support.transports.find((transport) => image.shareTransports.includes(transport)) ?? '9p';
  const best = driver.capabilities.shares[0];
  if (chosen === best) reporter.detail(`shares: ${support.reason}`);
  else if (support.transports[0] !== chosen) reporter.info(`shares over ${chosen}: the guest's kernel has no ${support.transports[0] ?? best} module`);
  else reporter.info(`shares over ${support.reason}${support.fix ? `; ${support.fix}` : ''}`);
  return chosen;
}

/** LINUX_BUILDER_SHARES=9p|virtiofs: one transport whatever the host offers (the shares benchmark compares them). */
function forcedShares(value: string | undefined): ShareTransport | undefined {
  if (value === undefined || value === '') return undefined;
  if (value === '9p' || value === 'virtiofs') return value;
  throw badInput(`LINUX_BUILDER_SHARES must be 9p or virtiofs (got ${JSON.stringify(value)})`, 'unset it to let start choose');
}

/** Launches over the chosen transport; when its daemon fails (virtiofsd), over 9p, saying so. */
async function launchSharing(
  driver: Driver,
  control: VmControl,
  plan: (transport: ShareTransport) => LaunchPlan,
  transport: ShareTransport,
  reporter: Reporter,
): Promise<{ vm: RunningVm; transport: ShareTransport }> {
  try {
    return { vm: await driver.launch(plan(transport), control), transport };
  } catch (error) {
    if (!(error instanceof ShareTransportFailed) || transport === '9p') throw error;
    reporter.info(`shares over 9p: ${transport} did not start (${error.message})`);
    return { vm: await driver.launch(plan('9p'), control), transport: '9p' };
  }
}

/** The host's /usr, or Debian's packages (fetched at the first start, with progress), checked for what the guest runs. */
async function prepareUserland(
  paths: InstancePaths,
  settings: Settings,
  decision: UserlandDecision,
  systems: readonly string[],
  arch: GuestArch,
  vsock: boolean,
  reporter: Reporter,
): Promise<GuestUserland> {
  if (decision.kind === 'debian' && settings.userland === 'auto') reporter.info(decision.reason);
  else reporter.detail(decision.reason);
  if (decision.kind === 'host') return hostUserland();
  const userland = await debianGuestUserland({
    arch,
    cacheDir: paths.cacheDir,
    systems,
    vsock,
    mirror: settings.mirror,
    instance: paths.stateDir,
    onProgress: (progress) => reporter.progress?.(progressLine(progress)),
    log: reporter.detail,
  });
  await userland.checkEmulators(systems, arch);
  await userland.checkIpTool();
  reporter.detail(`userland: ${userland.description} (${userland.usr})`);
  return userland;
}

async function waitForReady(paths: InstancePaths, vm: RunningVm, ssh: SshEndpoint, deadline: number, reporter: Reporter): Promise<void> {
  const target = sshTarget(paths, ssh);
  await waitUntilReady({
    target,
    deadline,
    exited: vm.exited,
    onRung: (rung) => reporter.detail(`ready rung: ${rung}`),
    guestFailure: () => guestReportedFailure(paths.consoleLog),
    guestReady: () => guestReportedReady(paths.consoleLog),
  });
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

