/**
 * The QEMU driver: KVM/HVF/TCG choice, PVH kernel preparation, detached launch (with a virtiofsd
 * per virtio-fs share), the power button through QMP "system_powerdown" (aarch64 virt), and a hard
 * stop through QMP "quit" then SIGKILL.
 */
import { access, constants, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ShareTransportFailed, type Driver, type LaunchPlan, type RunningVm, type VmControl } from '../driver.js';
import { devicesOf, type ShareDevice } from '../devices.js';
import { failed } from '../../errors.js';
import { hostArch, hostTscKhz } from '../../platform/host.js';
import { hostPackages, installCommand } from '../../platform/install-command.js';
import { findOnPath, isAlive, killHard, listProcesses, processCommandLine, spawnDetached, waitForExit } from '../process.js';
import { decideAccel, probeAccelFacts } from './accel.js';
import { bootsPowerKeyMachine, optionValue, qemuArgv, qemuBinary } from './argv.js';
import { qemuControl, qemuFiles } from './files.js';
import { prepareKernel } from './kernel.js';
import { QmpClient } from './qmp.js';
import { findVirtiofsd, shareSocket, startVirtiofsd, stopVirtiofsds, virtiofsdArgv, virtiofsSupport } from './virtiofsd.js';

function installHint(binary: string): string {
  return installCommand(binary === 'qemu-system-aarch64' ? hostPackages.qemuArm : hostPackages.qemuX86);
}

/** Where Debian and Ubuntu (qemu-system-data) and Homebrew put qboot, microvm's firmware of choice. */
const qbootPaths = ['/usr/share/qemu/qboot.rom', '/usr/local/share/qemu/qboot.rom', '/opt/homebrew/share/qemu/qboot.rom'];

async function microvmFirmware(): Promise<string | undefined> {
  for (const path of qbootPaths) {
    if (await access(path, constants.R_OK).then(() => true, () => false)) return path;
  }
  return undefined;
}

/** The virtiofsd socket of each virtio-fs share, in plan order, where launch starts them. */
function plannedShareSockets(plan: LaunchPlan, control: VmControl): string[] {
  return devicesOf(plan.devices, 'share')
    .filter((share) => share.transport === 'virtiofs')
    .map((_, index) => shareSocket(control.runtimeDir, index));
}

async function commandLine(plan: LaunchPlan, control: VmControl, shareSockets: readonly string[] = plannedShareSockets(plan, control)): Promise<string[]> {
  // microvm guests hang calibrating the TSC under TCG unless told its frequency.
  const tscKhz = plan.hostArch === 'x86_64' && plan.guestArch === 'x86_64' ? await hostTscKhz() : undefined;
  const firmware = plan.guestArch === 'x86_64' ? await microvmFirmware() : undefined;
  return qemuArgv(plan, { files: qemuFiles(control), tscKhz, firmware, shareSockets });
}

async function launch(plan: LaunchPlan, control: VmControl): Promise<RunningVm> {
  const binary = qemuBinary(plan);
  const binaryPath = await findOnPath(binary);
  if (binaryPath === undefined) throw failed(`${binary} not found`, installHint(binary));
  // A socket left by a killed QEMU would make the new one fail to listen.
  await clearControl(control);
  const shareSockets = await startShareDaemons(plan, control);
  try {
    return await spawnDetached([binaryPath, ...(await commandLine(plan, control, shareSockets)).slice(1)], plan.processLog);
  } catch (error) {
    await stopVirtiofsds(control.runtimeDir);
    throw error;
  }
}

/**
 * One virtiofsd per virtio-fs share, started together, each listening before QEMU starts; their
 * sockets in plan order. All or none: when one fails, the others are stopped and
 * ShareTransportFailed says why.
 * (fsN.sock is as long as qmp.sock, whose length the control's check covers.)
 */
async function startShareDaemons(plan: LaunchPlan, control: VmControl): Promise<string[]> {
  const shares = devicesOf(plan.devices, 'share').filter((share) => share.transport === 'virtiofs');
  if (shares.length === 0) return [];
  const daemon = await findVirtiofsd();
  if (daemon === undefined) throw new ShareTransportFailed(virtiofsSupport(undefined, process.getuid?.()).reason);
  const unshare = (await findOnPath('unshare')) ?? '/usr/bin/unshare';
  const root = process.getuid?.() === 0;
  // All at once: each waits for its own socket, and a boot should not wait for them in turn.
  const started = await Promise.allSettled(shares.map(async (share, index) => {
    const served = { source: share.hostPath, socket: shareSocket(control.runtimeDir, index), contents: share.contents ?? 'mutable' };
    await startVirtiofsd(virtiofsdArgv(daemon, served, { root, unshare }), served, daemonLog(plan, share));
    return served.socket;
  }));
  const failure = started.find((result) => result.status === 'rejected');
  if (failure !== undefined) {
    await stopVirtiofsds(control.runtimeDir);
    throw failure.reason;
  }
  return started.map((result) => (result.status === 'fulfilled' ? result.value : ''));
}

/** Beside the hypervisor's own log: virtiofsd-<tag>.log. */
function daemonLog(plan: LaunchPlan, share: ShareDevice): string {
  return join(dirname(plan.processLog), `virtiofsd-${share.tag}.log`);
}

/** The instance's QMP socket is in its VM's command line, and in no other program's. */
function namesQmpSocket(commandLine: string, control: VmControl): boolean {
  return commandLine.includes(`unix:${optionValue(qemuFiles(control).qmpSocket)},`);
}

async function ownsProcess(pid: number, control: VmControl): Promise<boolean> {
  const commandLine = await processCommandLine(pid);
  return commandLine !== undefined && namesQmpSocket(commandLine, control);
}

async function findProcesses(control: VmControl): Promise<number[]> {
  const candidates = (await listProcesses()).filter((p) => p.pid !== process.pid && namesQmpSocket(p.commandLine, control));
  const alive = await Promise.all(candidates.map(async (p) => ((await isAlive(p.pid)) ? [p.pid] : [])));
  return alive.flat();
}

async function quitThroughQmp(qmpSocket: string, timeoutMs: number): Promise<void> {
  let client: QmpClient | undefined;
  try {
    client = await QmpClient.connect(qmpSocket, timeoutMs);
    await client.execute('quit', undefined, timeoutMs);
  } catch {
    // QEMU may close the socket before its reply to "quit" arrives; SIGKILL follows anyway.
  } finally {
    client?.close();
  }
}

/**
 * system_powerdown where the guest listens to its power key (aarch64 virt): no SSH handshake, so
 * an aarch64 guest under TCG is off about 1.5 s sooner than through SSH's poweroff.
 */
async function pressPowerButton(pid: number, control: VmControl): Promise<boolean> {
  const commandLine = await processCommandLine(pid);
  if (commandLine === undefined || !namesQmpSocket(commandLine, control) || !bootsPowerKeyMachine(commandLine)) return false;
  let client: QmpClient | undefined;
  try {
    client = await QmpClient.connect(qemuFiles(control).qmpSocket, 2000);
    await client.execute('system_powerdown', undefined, 2000);
    return true;
  } catch {
    return false;
  } finally {
    client?.close();
  }
}

/** QEMU gone, then its virtiofsds. */
async function forceStop(pid: number, control: VmControl, timeoutMs: number): Promise<void> {
  await stopQemu(pid, control, timeoutMs);
  await stopVirtiofsds(control.runtimeDir);
}

async function stopQemu(pid: number, control: VmControl, timeoutMs: number): Promise<void> {
  if (!(await isAlive(pid)) || !(await ownsProcess(pid, control))) return;
  const quitBudget = Math.max(200, Math.min(2000, Math.floor(timeoutMs / 2)));
  await quitThroughQmp(qemuFiles(control).qmpSocket, quitBudget);
  if (await waitForExit(pid, quitBudget)) return;
  // Never SIGKILL a recycled pid: check again that it is still our QEMU.
  if (await ownsProcess(pid, control)) killHard(pid);
  if (!(await waitForExit(pid, Math.max(2000, timeoutMs - 2 * quitBudget)))) {
    throw failed(`the VM process ${pid} did not exit after SIGKILL`, `check it with: ps -p ${pid} -o pid,stat,command`);
  }
}

/** The QMP socket and pid file, and the virtiofsds of a VM that is gone (they exit with it; a stray one is stopped). */
async function clearControl(control: VmControl): Promise<void> {
  const files = qemuFiles(control);
  await Promise.all([files.qmpSocket, files.pidFile].map((file) => rm(file, { force: true })));
  await stopVirtiofsds(control.runtimeDir);
}

/** QEMU's user network (slirp): the guest at .15, the host's loopback behind .2, DNS at .3. */
const userNetwork = { kind: 'static', address: '10.0.2.15/24', gateway: '10.0.2.2', dns: '10.0.2.3', hostNet: '10.0.2.0/24' } as const;

export const qemuDriver: Driver = {
  name: 'qemu',
  capabilities: { shares: ['virtiofs', '9p'], network: userNetwork, ssh: 'forwarded-port', rosetta: false },
  control: qemuControl,
  async shareSupport() {
    return virtiofsSupport(await findVirtiofsd(), process.getuid?.());
  },
  async chooseAccel(requested, guestArch) {
    return decideAccel(requested, await probeAccelFacts(hostArch()), guestArch);
  },
  prepareKernel(kernelImage, cacheDir, guestArch) {
    return prepareKernel(kernelImage, cacheDir, guestArch);
  },
  launch,
  commandLine(plan, control) {
    return commandLine(plan, control);
  },
  async rosettaInstalled() {
    return false;
  },
  ownsProcess,
  findProcesses,
  pressPowerButton,
  forceStop,
  clearControl,
};
