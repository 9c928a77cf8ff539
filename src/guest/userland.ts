/**
 * Where the guest's programs come from: the host's own /usr (a Debian-like host of the guest's
 * architecture), or a tree of Debian trixie packages that src/debian fetches for the guest. The
 * guest takes everything of its userland through here: the kernel, busybox, sshd, the directory
 * shared as its /usr, and the qemu-user emulators its binfmt entries name.
 */
import { hostPackages, installCommand } from '../platform/install-command.js';
import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { GuestArch, HostArch } from '../drivers/driver.js';
import type { UserlandChoice } from '../config/values.js';
import { badInput, failed } from '../errors.js';
import { debianSuite, debianUserland, guestPackageRequest, debianArch, type FetchProgress } from '../debian/index.js';
import { hostArch } from '../platform/host.js';
import { emulatedSystems, qemuUserBinary, type SystemInfo } from '../platform/systems.js';
import { findBusybox } from './busybox.js';
import type { GuestTools } from './init.js';
import { checkKernelImage, findLocalKernel, kernelInTree, locateKernel, type KernelLocation } from './kernel-source.js';
import { findSshd, fromTree, type FoundSshd } from './sshd.js';

export { userlandChoices, type UserlandChoice } from '../config/values.js';
export type UserlandKind = Exclude<UserlandChoice, 'auto'>;

export interface KernelRequest {
  readonly explicit?: string | undefined;
  readonly cacheDir: string;
  readonly log: (line: string) => void;
}

/** What the state file records and `status` shows of the userland a VM runs. */
export interface UserlandSummary {
  readonly kind: UserlandKind;
  /** "the host's /usr", "Debian trixie arm64, 213 packages". */
  readonly description: string;
  /** The host directory shared as the guest's /usr. */
  readonly usr: string;
  /** The Debian tree's key: its directory under <cache>/debian/trees. */
  readonly tree?: string;
}

export interface GuestUserland {
  readonly kind: UserlandKind;
  /** For log lines: "the host's /usr", "Debian trixie (…)". */
  readonly description: string;
  /** The host directory the guest mounts read-only as its /usr. */
  readonly usr: string;
  /** Stands for this userland in the guest image's cache key: a host image never serves a Debian guest. */
  readonly imageKey: string;
  /** The programs the guest's scripts run (mkfs, ip, nix-store…), as paths in the guest. */
  readonly tools: GuestTools;
  /** The userland's ld.so.cache, copied into the image; absent: its loader's built-in search path serves. */
  readonly ldCache?: string;
  readonly summary: UserlandSummary;
  kernel(request: KernelRequest): Promise<KernelLocation>;
  busybox(): Promise<string>;
  sshd(options: { cacheDir: string; log: (line: string) => void }): Promise<FoundSshd>;
  /** The qemu-user interpreter of a system, as a path in the guest. */
  emulator(info: SystemInfo): string;
  /** Fails naming every emulator the systems need that the userland lacks. */
  checkEmulators(systems: readonly string[], arch: HostArch): Promise<void>;
  /** iproute2's ip, which keeps builds off the host's loopback. */
  checkIpTool(): Promise<void>;
}

/** Where a Debian-style /usr has what the guest's scripts run: the host's and Debian's trees alike. */
const usrTools: GuestTools = {
  mkfsExt4: '/usr/sbin/mkfs.ext4',
  resize2fs: '/usr/sbin/resize2fs',
  iproute2: '/usr/sbin/ip',
  nixStore: '/usr/bin/nix-store',
  nixDaemon: '/usr/bin/nix-daemon',
  fallocate: '/usr/bin/fallocate',
};

const executable = (path: string) => access(path, constants.X_OK).then(() => true, () => false);

/** A path the guest sees under /usr, on the host. */
function onHost(usr: string, guestPath: string): string {
  return join(usr, guestPath.replace(/^\/usr\//, ''));
}

async function checkEmulatorsIn(userland: GuestUserland, systems: readonly string[], arch: HostArch, hint: string): Promise<void> {
  const missing: string[] = [];
  for (const info of emulatedSystems(systems, arch)) {
    if (!(await executable(onHost(userland.usr, userland.emulator(info))))) missing.push(`${info.system} needs ${userland.emulator(info)}`);
  }
  if (missing.length > 0) throw badInput(`${missing.join('; ')} (${userland.description})`, hint);
}

// ---- the host's /usr -------------------------------------------------------------------

export function hostUserland(): GuestUserland {
  const summary: UserlandSummary = { kind: 'host', description: "the host's /usr", usr: '/usr' };
  const userland: GuestUserland = {
    kind: summary.kind,
    description: summary.description,
    usr: summary.usr,
    summary,
    imageKey: 'host',
    tools: usrTools,
    ldCache: '/etc/ld.so.cache',
    kernel: (request) => locateKernel({ ...request, hostArch: hostArch() }),
    busybox: () => findBusybox(),
    sshd: (options) => findSshd(options),
    emulator: qemuUserBinary,
    checkEmulators: (systems, arch) =>
      checkEmulatorsIn(userland, systems, arch, `${installCommand(hostPackages.qemuUser)}, use --userland debian, or leave those systems out of --systems`),
    async checkIpTool() {
      if (!(await executable(onHost(userland.usr, usrTools.iproute2)))) {
        throw failed(
          `${usrTools.iproute2} not found: the guest needs iproute2 to keep builds off the host's loopback`,
          `${installCommand(hostPackages.iproute2)}, or use --userland debian`,
        );
      }
    },
  };
  return userland;
}

// ---- Debian packages -------------------------------------------------------------------

/** Where the kernel finds the dynamic loader the binaries name; the initramfs links lib and lib64 to usr/. */
const debianLoader: Record<HostArch, string> = {
  x86_64: 'usr/lib64/ld-linux-x86-64.so.2',
  aarch64: 'usr/lib/ld-linux-aarch64.so.1',
};

export interface DebianUserlandRequest {
  /** The guest's architecture: the packages are Debian's for it. */
  readonly arch: GuestArch;
  readonly cacheDir: string;
  /** The Nix systems the guest builds: foreign ones bring qemu-user. */
  readonly systems: readonly string[];
  readonly mirror?: string | undefined;
  readonly onProgress?: (progress: FetchProgress) => void;
  readonly log?: (line: string) => void;
  /** The instance's state dir: it holds the tree it boots, and trees no instance holds any more are removed. */
  readonly instance?: string;
}

/** The Debian tree for the guest, fetched now unless the cache has it. */
export async function debianGuestUserland(request: DebianUserlandRequest): Promise<GuestUserland> {
  const arch = debianArch(request.arch);
  const tree = await debianUserland({
    cacheDir: request.cacheDir,
    arch: request.arch,
    request: guestPackageRequest(arch, { foreign: emulatedSystems(request.systems, request.arch).length > 0 }),
    ...(request.mirror !== undefined ? { mirror: request.mirror } : {}),
    ...(request.onProgress !== undefined ? { onProgress: request.onProgress } : {}),
    ...(request.log !== undefined ? { log: request.log } : {}),
    ...(request.instance !== undefined ? { instance: request.instance } : {}),
  });
  const loader = join(tree.root, debianLoader[request.arch]);
  const cacheHint = `remove ${tree.root.replace(/\/root$/, '')} and start again to fetch the packages anew`;
  if (!(await executable(loader))) throw failed(`the Debian packages have no dynamic loader at /${debianLoader[request.arch]}`, cacheHint);
  const sshdVersion = tree.packages.find((p) => p.name === 'openssh-server')?.version ?? 'unknown';
  const summary: UserlandSummary = { kind: 'debian', description: `Debian ${debianSuite} ${arch}, ${tree.packages.length} packages`, usr: join(tree.root, 'usr'), tree: tree.key };
  const userland: GuestUserland = {
    kind: summary.kind,
    description: summary.description,
    usr: summary.usr,
    summary,
    imageKey: `debian ${tree.key}`,
    tools: usrTools,
    async kernel(kernelRequest) {
      if (kernelRequest.explicit !== undefined) {
        const found = await locateKernel({ ...kernelRequest, hostArch: request.arch, moduleTrees: [tree.root] });
        if (found.modulesDir !== undefined) return found;
        const debians = `or boot Debian's own ${arch} kernel: delete "kernel" from the instance's config.json`;
        if (found.version === 'unknown') {
          throw failed(`--kernel ${found.image}: its version cannot be read, so its modules cannot be found`, `name the file vmlinuz-<version>, ${debians}`);
        }
        throw failed(
          `no modules for --kernel ${found.image} (${found.version}, ${request.arch}) beside it or in Debian's packages`,
          `put them in ${join(dirname(found.image), 'lib', 'modules', found.version)}, or in lib/modules/${found.version} beside the kernel's boot/ directory as an unpacked kernel package has them, ${debians}`,
        );
      }
      const found = await kernelInTree(tree.root);
      if (found === undefined) throw failed(`the Debian packages hold no boot/vmlinuz-*`, cacheHint);
      kernelRequest.log(`using Debian's kernel ${found.image}`);
      return { ...found, source: 'debian' };
    },
    busybox: () => findBusybox([join(tree.root, 'usr/bin/busybox')]),
    async sshd() {
      const found = await fromTree(tree.root, `openssh-server ${sshdVersion}`);
      if (found === undefined) throw failed('the Debian packages have no usr/sbin/sshd', cacheHint);
      return { ...found, loader };
    },
    // trixie's qemu-user: statically linked, without the -static suffix
    emulator: (info) => `/usr/bin/qemu-${info.qemuArch}`,
    checkEmulators: (systems, arch) => checkEmulatorsIn(userland, systems, arch, 'leave those systems out of --systems: Debian has no emulator for them'),
    async checkIpTool() {
      if (!(await executable(onHost(userland.usr, usrTools.iproute2)))) throw failed(`the Debian packages have no ${usrTools.iproute2} (iproute2)`, cacheHint);
    },
  };
  return userland;
}

// ---- auto --------------------------------------------------------------------------------

/** What decides whether the host's /usr can serve the guest. */
export interface HostUserlandFacts {
  /** os-release ID and ID_LIKE words. */
  readonly distribution: readonly string[];
  readonly staticBusybox: boolean;
  /** A kernel with modules in /boot or the cache, or apt to download the distribution's. */
  readonly kernel: boolean;
  readonly ipTool: boolean;
}

export interface UserlandDecision {
  readonly kind: UserlandKind;
  readonly reason: string;
}

/** The guest's and the host's architecture: the host's /usr serves only a guest of its own. */
export interface ArchPair {
  readonly guest: GuestArch;
  readonly host: HostArch;
}

/**
 * auto: the host's /usr where it can serve (a Debian or Ubuntu host of the guest's architecture
 * with what the guest needs), Debian's packages otherwise. host for a guest of another
 * architecture is bad input.
 */
export function decideUserland(choice: UserlandChoice, facts: HostUserlandFacts, arch?: ArchPair): UserlandDecision {
  if (arch !== undefined && arch.guest !== arch.host) {
    if (choice === 'host') {
      throw badInput(
        `--arch ${arch.guest} cannot use --userland host: the host's /usr holds ${arch.host} programs`,
        `use --userland debian (or auto), which fetches Debian ${debianSuite}'s ${debianArch(arch.guest)} packages for the guest`,
      );
    }
    const why = `the guest is ${arch.guest} and the host's /usr ${arch.host}`;
    return { kind: 'debian', reason: `${choice === 'auto' ? 'auto' : '--userland debian'}: Debian ${debianSuite} ${debianArch(arch.guest)} packages fetched into the cache, because ${why}` };
  }
  if (choice === 'host') return { kind: 'host', reason: "--userland host: the host's /usr" };
  if (choice === 'debian') return { kind: 'debian', reason: `--userland debian: Debian ${debianSuite} packages fetched into the cache` };
  const lacks: string[] = [];
  if (!facts.distribution.some((id) => id === 'debian' || id === 'ubuntu')) lacks.push(`is not Debian or Ubuntu (${facts.distribution.join(', ') || 'no /etc/os-release'})`);
  if (!facts.staticBusybox) lacks.push('has no static busybox');
  if (!facts.kernel) lacks.push('has no kernel with modules and no apt to download one');
  if (!facts.ipTool) lacks.push(`has no ${usrTools.iproute2}`);
  if (lacks.length === 0) return { kind: 'host', reason: "auto: the host's /usr serves the guest (Debian-like, static busybox, a kernel, iproute2)" };
  return { kind: 'debian', reason: `auto: Debian ${debianSuite} packages, because the host ${lacks.join(', ')}` };
}

/** "ID=ubuntu\nID_LIKE=debian" → ["ubuntu", "debian"]. */
export function osReleaseIds(text: string): string[] {
  const ids: string[] = [];
  for (const line of text.split('\n')) {
    const match = /^(ID|ID_LIKE)=(.*)$/.exec(line.trim());
    if (match) ids.push(...(match[2] ?? '').replace(/^["']|["']$/g, '').split(/\s+/).filter(Boolean));
  }
  return ids;
}

export async function hostUserlandFacts(options: { cacheDir: string; arch: HostArch; explicitKernel?: string | undefined }): Promise<HostUserlandFacts> {
  const osRelease = await readFile('/etc/os-release', 'utf8').catch(() => readFile('/usr/lib/os-release', 'utf8')).catch(() => '');
  const staticBusybox = await findBusybox().then(() => true, () => false);
  const local = await findLocalKernel({ explicit: options.explicitKernel, cacheDir: options.cacheDir, hostArch: options.arch, log: () => undefined }).catch(() => undefined);
  const kernel = local !== undefined || (await executable('/usr/bin/apt-get'));
  return { distribution: osReleaseIds(osRelease), staticBusybox, kernel, ipTool: await executable(usrTools.iproute2) };
}

/**
 * options.arch is the guest's; a guest of another architecture than the host's always gets
 * Debian's packages. An explicit kernel of another architecture than the guest's is bad input,
 * found here, before a start writes anything.
 */
export async function chooseUserland(choice: UserlandChoice, options: { cacheDir: string; arch: GuestArch; explicitKernel?: string | undefined }): Promise<UserlandDecision> {
  if (options.explicitKernel !== undefined) await checkKernelImage(options.explicitKernel, options.arch);
  const arch = { guest: options.arch, host: hostArch() };
  if (choice !== 'auto' || arch.guest !== arch.host) return decideUserland(choice, { distribution: [], staticBusybox: false, kernel: false, ipTool: false }, arch);
  return decideUserland(choice, await hostUserlandFacts(options), arch);
}
