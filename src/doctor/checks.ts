/**
 * doctor: every check that decides whether a build can go through this builder, each with
 * what was found and, when it blocks a build, the fix.
 */
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Driver, GuestArch } from '../drivers/driver.js';
import { instanceDriver } from '../instance/driver-of.js';
import { macChecks, probeMacFacts } from './macos.js';
import { findOnPath } from '../drivers/process.js';
import { UserError } from '../errors.js';
import { findBusybox } from '../guest/busybox.js';
import { findLocalKernel } from '../guest/kernel-source.js';
import { builderModules, ModuleIndex } from '../guest/modules.js';
import { instanceSystems } from '../instance/guest-config.js';
import { chooseUserland, hostUserland } from '../guest/userland.js';
import { diskUsage, hostFreeMiB } from '../instance/disk.js';
import { defaultDiskMiB, guestArchOf, type Settings } from '../config/settings.js';
import { formatMiB } from '../config/values.js';
import { loadSettings } from '../instance/identity.js';
import { status } from '../instance/lifecycle.js';
import { checkSocketPath, instancePaths, roots, type InstancePaths } from '../instance/paths.js';
import { checkPrivateDir } from '../fs/private-dir.js';
import { builderEntries, hostNixSettings, nixVersion } from '../nix/host-nix.js';
import { chooseRoute, configFiles, defaultScope } from '../nix/registration.js';
import { probeStoreAccess, storeAccessCheck, usesSystemBuilders, type StoreAccessFacts } from './nix-store.js';
import { daemonBuilderCheck, findDaemonBuilder, systemBuilders, unreadableIncludes } from './daemon-builders.js';
import { reachableSubstituters } from '../nix/substituters.js';
import { hostArch } from '../platform/host.js';
import { hostPackages, installCommand } from '../platform/install-command.js';
import { hostAlias } from '../ssh/config.js';
import { loopbackHost } from '../ssh/endpoint.js';

export type Verdict = 'ok' | 'warn' | 'fail';

export interface Check {
  readonly name: string;
  readonly verdict: Verdict;
  readonly detail: string;
  readonly fix?: string;
}

const ok = (name: string, detail: string): Check => ({ name, verdict: 'ok', detail });
const warn = (name: string, detail: string, fix?: string): Check => ({ name, verdict: 'warn', detail, ...(fix ? { fix } : {}) });
const fail = (name: string, detail: string, fix: string): Check => ({ name, verdict: 'fail', detail, fix });

async function guarded(name: string, check: () => Promise<Check>): Promise<Check> {
  try {
    return await check();
  } catch (error) {
    return fail(name, error instanceof Error ? error.message : String(error), error instanceof UserError ? (error.hint ?? '') : 'this is a bug in doctor');
  }
}

function sshEffectiveConfig(alias: string, env: NodeJS.ProcessEnv): Promise<Map<string, string>> {
  const opts = (env.NIX_SSHOPTS ?? '').split(/\s+/).filter((o) => o !== '');
  return new Promise((resolve, reject) => {
    execFile('ssh', [...opts, '-G', alias], { env, timeout: 5000 }, (error, stdout) => {
      if (error) return reject(error);
      const map = new Map<string, string>();
      for (const line of stdout.split('\n')) {
        const space = line.indexOf(' ');
        if (space > 0 && !map.has(line.slice(0, space))) map.set(line.slice(0, space), line.slice(space + 1));
      }
      resolve(map);
    });
  });
}

async function modeOf(path: string): Promise<number | undefined> {
  return stat(path).then((s) => s.mode & 0o777, () => undefined);
}

async function checkPermissions(paths: InstancePaths): Promise<Check> {
  const problems: string[] = [];
  const commands: string[] = [];
  for (const [path, want] of [
    [paths.stateDir, 0o700],
    [paths.guestShare, 0o700],
    [paths.clientKey, 0o600],
  ] as const) {
    const mode = await modeOf(path);
    if (mode !== undefined && (mode & ~want) !== 0) {
      problems.push(`${path} is ${mode.toString(8)}, want ${want.toString(8)}`);
      commands.push(`chmod ${want.toString(8)} ${path}`);
    }
  }
  if (problems.length > 0) return fail('permissions', problems.join('; '), commands.join('; '));
  return ok('permissions', 'state dir 0700, keys 0600');
}

/** The sparse disk takes host space as the guest writes: the host should have room for all of it. */
async function checkDiskSpace(paths: InstancePaths, sizeMiB: number): Promise<Check> {
  const usage = await diskUsage(paths.disk);
  const size = Math.max(sizeMiB, usage?.sizeMiB ?? 0);
  const canGrowMiB = size - (usage?.allocatedMiB ?? 0);
  const freeMiB = await hostFreeMiB(paths.disk);
  const what = usage ? `${formatMiB(usage.allocatedMiB)} of ${formatMiB(size)} used` : `${formatMiB(size)}, not created yet`;
  if (freeMiB < canGrowMiB) {
    return warn(
      'disk',
      `${what}; the host has ${formatMiB(freeMiB)} free, the disk can still grow by ${formatMiB(canGrowMiB)}: builds may fail with a full host disk`,
      `free space under ${paths.stateDir}, or start with a smaller --disk-size (after --ephemeral if the disk exists)`,
    );
  }
  return ok('disk', `${what}; the host has ${formatMiB(freeMiB)} free`);
}

/** Writable, or creatable: the nearest existing directory above it is writable. */
async function canWrite(path: string): Promise<boolean> {
  for (let at = path; ; at = dirname(at)) {
    if (await stat(at).then(() => true, () => false)) return access(at, constants.W_OK).then(() => true, () => false);
    if (at === dirname(at)) return false;
  }
}

/** The install command, and the files it writes: the user needs write access to both. */
async function installFix(paths: InstancePaths, env: NodeJS.ProcessEnv, builders: string): Promise<string> {
  const command = `linux-builder${paths.name === 'default' ? '' : ` --name ${paths.name}`} nix-config --install`;
  const scope = defaultScope();
  const files = configFiles(scope, {}, env);
  const written = [...(chooseRoute(scope, files, builders) === 'machines-file' ? [files.machines] : []), files.nixConf, files.sshConfig];
  const blocked: string[] = [];
  for (const file of written) if (!(await canWrite(file))) blocked.push(file);
  if (blocked.length === 0) return `${command} (writes ${written.slice(0, -1).join(', ')} and ${written.at(-1) ?? ''})`;
  if (scope === 'system') return `sudo ${command} (writes ${blocked.join(' and ')}), or for this user alone: ${command} --scope user`;
  return `${command} (needs write access to ${blocked.join(' and ')})`;
}

async function checkNixRegistration(paths: InstancePaths, port: number | undefined, env: NodeJS.ProcessEnv): Promise<Check[]> {
  const name = 'nix config';
  const settings = await hostNixSettings(env);
  const install = await installFix(paths, env, settings.builders);
  const direct = builderEntries(settings.builders).includes(`@${paths.machines}`);
  const viaFile = direct ? undefined : await findDaemonBuilder(settings.builders, paths.name);
  if (!direct && viaFile?.found !== 'machines-file') {
    return [fail(name, `Nix's builders (${settings.builders || 'empty'}) do not include this instance's machines file`, install)];
  }
  const named = viaFile?.found === 'machines-file' ? `builders include ${viaFile.file}, which names builder "${paths.name}"` : `builders include ${paths.machines}`;
  const exists = await stat(paths.machines).then(() => true, () => false);
  if (!exists) return [fail(name, `${paths.machines} is missing`, install)];
  const alias = hostAlias(paths.name);
  const ssh = await sshEffectiveConfig(alias, env).catch(() => undefined);
  if (!ssh) return [fail('ssh config', `ssh cannot resolve the alias ${alias}`, install)];
  const problems: string[] = [];
  if (ssh.get('hostname') !== loopbackHost) problems.push(`HostName is ${ssh.get('hostname')}, not ${loopbackHost}`);
  if (port !== undefined && ssh.get('port') !== String(port)) problems.push(`Port is ${ssh.get('port')}, the builder (or its agent) listens on ${port}`);
  if (ssh.get('hostkeyalias') !== alias) problems.push(`HostKeyAlias is ${ssh.get('hostkeyalias') ?? 'missing'} (the pinned key is filed under ${alias})`);
  const identity = ssh.get('identityfile') ?? '';
  if (!identity.split(' ').includes(paths.clientKey)) problems.push(`IdentityFile is ${identity}, not ${paths.clientKey}`);
  if (problems.length > 0) return [ok(name, named), fail('ssh config', problems.join('; '), install)];
  return [ok(name, named), ok('ssh config', `${alias} → ${loopbackHost}:${port}, host key pinned, instance key`)];
}

/** The daemon's ssh runs as root: /etc/ssh/ssh_config is the part of its config a user can read. */
const systemSshConfig = '/etc/ssh/ssh_config';

/** For a user whose builds go through a nix-daemon that takes only the system's builders. */
async function checkDaemonRegistration(name: string, env: NodeJS.ProcessEnv): Promise<Check[]> {
  const builders = await systemBuilders(env);
  const found = daemonBuilderCheck(await findDaemonBuilder(builders, name), builders, name);
  const checks: Check[] = [{ name: 'nix config', ...found }];
  if (found.verdict === 'fail') return checks;
  const alias = hostAlias(name);
  const ssh = await sshEffectiveConfig(alias, { ...env, NIX_SSHOPTS: `-F ${systemSshConfig}` }).catch(() => undefined);
  const problems: string[] = [];
  if (ssh?.get('hostname') !== loopbackHost) problems.push(`HostName is ${ssh?.get('hostname') ?? 'unknown'}, not ${loopbackHost}`);
  if (ssh?.get('hostkeyalias') !== alias) problems.push(`HostKeyAlias is ${ssh?.get('hostkeyalias') ?? 'missing'}`);
  // The Nix modules Include the block root's agent writes into its own 0700 directory.
  const rootBlock = instancePaths(name, roots({}, process.platform, 0)).nixSshConfig;
  if (problems.length > 0 && (await unreadableIncludes(alias, systemSshConfig, env)).includes(rootBlock)) {
    checks.push(ok('ssh config', `root's ssh (${systemSshConfig}) includes ${rootBlock} for ${alias}, which the agent (run as root) writes; this user cannot read it`));
    return checks;
  }
  checks.push(
    problems.length === 0
      ? ok('ssh config', `root's ssh (${systemSshConfig}): ${alias} → ${loopbackHost}:${ssh?.get('port')}, host key pinned`)
      : warn('ssh config', `${systemSshConfig} does not set up ${alias} (${problems.join('; ')}): the daemon's ssh runs as root and needs it there, unless root's ~/.ssh/config has it (not readable here)`, `sudo linux-builder${name === 'default' ? '' : ` --name ${name}`} nix-config --install`),
  );
  return checks;
}

/** QEMU's host: the guest's architecture, QEMU, the accelerator, where the guest's programs come from. */
async function qemuHostChecks(paths: InstancePaths, driver: Driver, settings: Settings | undefined, arch: GuestArch): Promise<Check[]> {
  const checks: Check[] = [];
  checks.push(ok('arch', arch === hostArch() ? `${arch} guest, the host's architecture` : `${arch} guest on this ${hostArch()} host (--arch; emulated by TCG, slower)`));
  const qemuBinary = arch === 'x86_64' ? 'qemu-system-x86_64' : 'qemu-system-aarch64';
  checks.push(
    (await findOnPath(qemuBinary))
      ? ok('qemu', qemuBinary)
      : fail('qemu', `${qemuBinary} not found`, installCommand(arch === 'x86_64' ? hostPackages.qemuX86 : hostPackages.qemuArm)),
  );
  checks.push(await guarded('shares', async () => {
    const support = await driver.shareSupport();
    return support.transports[0] === driver.capabilities.shares[0] ? ok('shares', support.reason) : warn('shares', support.reason, support.fix);
  }));
  checks.push(await guarded('accel', async () => {
    const decision = await driver.chooseAccel(settings?.accel ?? 'auto', arch);
    return decision.accel === 'tcg' ? warn('accel', `TCG (software emulation, slower): ${decision.reason}`, decision.fix) : ok('accel', decision.reason);
  }));
  const userland = await chooseUserland(settings?.userland ?? 'auto', { cacheDir: paths.cacheDir, arch, explicitKernel: settings?.kernel })
    .catch((error: unknown) => error instanceof UserError ? error : { kind: 'host' as const, reason: `auto could not look at the host (${String(error)}): the host's /usr` });
  // a remembered --userland host with a guest of another architecture
  if (userland instanceof UserError) checks.push(fail('userland', userland.message, userland.hint ?? 'use --userland debian'));
  else checks.push(ok('userland', userland.reason));
  if (userland instanceof UserError || userland.kind === 'debian') {
    // kernel, busybox, sshd, iproute2 and qemu-user come from the packages, checked when start fetches them
    checks.push(ok('guest programs', 'kernel, busybox, sshd, Nix, iproute2 and qemu-user from Debian\'s packages (fetched into the cache at the first start)'));
  } else {
    checks.push(await guarded('kernel', async () => {
      const kernel = await findLocalKernel({ explicit: settings?.kernel, cacheDir: paths.cacheDir, hostArch: arch, log: () => {} });
      if (!kernel) return warn('kernel', 'no host kernel with modules; the first start downloads the distribution\'s kernel package (apt-get download, once)', `or boot your own: linux-builder${paths.name === 'default' ? '' : ` --name ${paths.name}`} start --kernel PATH`);
      if (!kernel.modulesDir) return fail('kernel', `${kernel.image}: no modules found for ${kernel.version}`, 'install the kernel\'s modules or use another --kernel');
      const index = await ModuleIndex.open(kernel.modulesDir);
      const modules = await index.find(builderModules);
      const virtiofs = index.has('virtiofs') ? 'virtio-fs and 9p' : '9p only: no virtiofs module';
      return ok('kernel', `${kernel.version} (${kernel.source}), ${modules.length} guest modules found; shares: ${virtiofs}`);
    }));
    checks.push(await guarded('busybox', async () => ok('busybox', await findBusybox())));
    checks.push(await guarded('iproute2', async () => {
      await hostUserland().checkIpTool();
      return ok('iproute2', `${hostUserland().tools.iproute2} (keeps builds off the host's loopback)`);
    }));
    checks.push(await guarded('qemu-user', async () => {
      const systems = instanceSystems(settings?.systems, arch);
      await hostUserland().checkEmulators(systems, arch);
      return ok('qemu-user', `emulators present for ${systems.join(', ')}`);
    }));
  }
  return checks;
}

export async function runChecks(name: string, env: NodeJS.ProcessEnv = process.env): Promise<Check[]> {
  const paths = instancePaths(name);
  const settings = await loadSettings(paths).catch(() => undefined);
  const driver = await instanceDriver(paths);
  const arch = settings ? guestArchOf(settings) : hostArch();
  const checks: Check[] = [];
  if (driver.name === 'vfkit') {
    const sockets = [...driver.control(paths.runtimeDir).sockets, paths.guestSshSocket].map((path) => ({ what: basename(path), path }));
    checks.push(...macChecks(await probeMacFacts(sockets), { rosetta: settings?.rosetta ?? true }));
  } else {
    checks.push(...(await qemuHostChecks(paths, driver, settings, arch)));
  }
  const version = await nixVersion();
  checks.push(version ? ok('nix', `Nix ${version}`) : fail('nix', 'nix not found', installCommand(hostPackages.nix)));
  if (version) {
    let facts: StoreAccessFacts | undefined;
    checks.push(await guarded('nix store', async () => {
      const { trustedUsers } = await hostNixSettings(env);
      facts = await probeStoreAccess(trustedUsers, env);
      return { name: 'nix store', ...storeAccessCheck(facts) };
    }));
    const registered = facts !== undefined && usesSystemBuilders(facts)
      ? checkDaemonRegistration(paths.name, env)
      : checkNixRegistration(paths, settings?.agentPort ?? settings?.sshPort, env);
    checks.push(...(await registered.catch((error: unknown) => [fail('nix config', String(error), 'check nix show-config')])));
    checks.push(await guarded('substituters', async () => {
      const { substituters } = await hostNixSettings(env);
      const reachable = await reachableSubstituters(substituters);
      const unreachable = substituters.filter((s) => !reachable.includes(s));
      return unreachable.length === 0
        ? ok('substituters', substituters.length > 0 ? substituters.join(' ') : 'none')
        : warn('substituters', `unreachable: ${unreachable.join(' ')}; every build on this host waits seconds on them`, `offline: echo 'substituters =' | ${defaultScope() === 'system' ? '' : 'sudo '}tee -a ${configFiles('system', {}, env).nixConf}`);
    }));
  }
  checks.push(await guarded('disk', () => checkDiskSpace(paths, settings?.diskSizeMiB ?? defaultDiskMiB)));
  checks.push(await guarded('permissions', () => checkPermissions(paths)));
  checks.push(await guarded('socket paths', async () => {
    for (const socket of driver.control(paths.runtimeDir).sockets) checkSocketPath(socket);
    if (driver.capabilities.ssh === 'vsock-socket') checkSocketPath(paths.guestSshSocket);
    checkSocketPath(`${paths.controlSocket}.XXXXXXXXXXXXXXXX`); // ssh adds a temporary suffix
    await checkPrivateDir(paths.runtimeDir);
    return ok('socket paths', `${paths.runtimeDir} (short enough, private)`);
  }));
  const s = await status(name);
  checks.push(
    s.state === 'broken'
      ? fail('instance', `broken: ${s.reasons.join('; ')}`, `linux-builder --name ${name} stop --force`)
      : ok('instance', `${s.state}${s.reasons.length > 0 ? ` (${s.reasons.join('; ')})` : ''}`),
  );
  return checks;
}

export function isBlocking(checks: readonly Check[]): boolean {
  return checks.some((c) => c.verdict === 'fail');
}

