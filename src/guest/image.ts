/**
 * The guest's initramfs, built once per set of inputs and cached: a second start with the same
 * busybox, modules, sshd and generated texts finds the image by its key and rebuilds nothing.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { writeFileAtomic, writingTo } from '../fs/files.js';
import { basename, dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { GuestArch } from '../drivers/driver.js';
import { busyboxApplets, findBusybox } from './busybox.js';
import { type CpioEntry, cpioChunks } from './cpio.js';
import { collectorScript } from './collector.js';
import { nixDaemonSpares, nixDaemonWrapper } from './daemon.js';
import { type InitOptions, type ModuleGroups, type NineCache, dhcpScript, etcFiles, guestPaths, initScript, rcBuilder, sshdConfig } from './init.js';
import { powerButtonScript, shutdownScript } from './power.js';
import { type GuestModule, ModuleIndex, builderModules, diskModules, loadLevels, readModule } from './modules.js';
import type { ShareTransport } from '../drivers/devices.js';
import { type FoundSshd, sshdLibraries, sshdVersionConfig } from './sshd.js';
import type { GuestUserland } from './userland.js';

/** Bump when the layout of the image changes in a way the inputs do not show. */
const imageFormat = 1;
/**
 * The modules each boot step needs, in load order; a group leaves out what earlier groups load.
 * virtio_pci only loads where the guest has PCI (aarch64 virt): microvm has none. virtio-fs is
 * there where the kernel has it (Debian's: a module, or built in); 9p always.
 */
const moduleGroups = {
  boot: ['virtio_mmio'],
  ninep: ['9pnet_virtio', '9p'],
  virtiofs: ['virtiofs'],
  pci: ['virtio_pci'],
  net: ['virtio_net'],
  disk: diskModules,
  vsock: ['vmw_vsock_virtio_transport'],
  power: ['evdev', 'gpio_keys'],
} as const;
/** Uncompressed boots faster under TCG (no inflate in the guest) and costs only disk. */
export type Compression = 'none' | 'gzip';
const defaultCompression: Compression = 'none';

export interface GuestImageRequest {
  readonly modulesDir: string;
  readonly kernelVersion: string;
  /** The guest's architecture. */
  readonly arch: GuestArch;
  readonly cacheDir: string;
  /** Where busybox, sshd and the ld.so.cache come from. */
  readonly userland: GuestUserland;
  readonly log: (line: string) => void;
  /** 9p cache mode for /usr and /nix/store; default loose. */
  readonly cache?: NineCache;
  /** Modules beyond builderModules and diskModules. */
  readonly extraModules?: readonly string[];
  readonly compression?: Compression;
}

export interface GuestImage {
  readonly path: string;
  readonly key: string;
  readonly built: boolean;
  /** The share transports its kernel can mount: 9p always, virtio-fs where the kernel has it. */
  readonly shareTransports: readonly ShareTransport[];
}

interface Inputs {
  readonly busybox: string;
  readonly sshd: FoundSshd;
  /** sshd's shared libraries: guest file name → host file. */
  readonly sshdLibraries: ReadonlyMap<string, string>;
  /** Every module in the image, in load order. */
  readonly modules: GuestModule[];
  readonly init: InitOptions;
  readonly ldCache: string | undefined;
  readonly shareTransports: readonly ShareTransport[];
}

async function gatherInputs(request: GuestImageRequest): Promise<Inputs> {
  const busybox = await request.userland.busybox();
  const sshd = await request.userland.sshd({ cacheDir: request.cacheDir, log: request.log });
  const libraries = await sshdLibraries(sshd);
  const modules: GuestModule[] = [];
  const index = await ModuleIndex.open(request.modulesDir);
  const group = async (wanted: readonly string[], optional: readonly string[] = []): Promise<string[][]> => {
    const loaded = new Set(modules.map((m) => m.name));
    const found = (await index.find(wanted, optional)).filter((m) => !loaded.has(m.name));
    modules.push(...found);
    return loadLevels(found);
  };
  const groups: ModuleGroups = {
    boot: await group(moduleGroups.boot),
    shares: { '9p': await group(moduleGroups.ninep), virtiofs: await group([], moduleGroups.virtiofs) },
    pci: await group(moduleGroups.pci),
    net: await group(moduleGroups.net),
    late: await group([...builderModules, ...(request.extraModules ?? [])]),
    // After late, so the disk group holds only what the disk adds (the ext4 stack is ~0.5 s under TCG).
    disk: await group(moduleGroups.disk),
    // where the kernel has it: only SSH over vsock (vfkit) needs it
    vsock: await group([], moduleGroups.vsock),
    // the power key of aarch64 machines (a device tree's gpio-keys); x86_64's microvm has none
    power: request.arch === 'aarch64' ? await group([], moduleGroups.power) : [],
  };
  const init: InitOptions = {
    modules: groups,
    cache: request.cache ?? 'loose',
    tools: request.userland.tools,
    sshdNoReexec: !sshd.split,
    sshdExtraConfig: sshdVersionConfig(sshd, guestPaths.sshDir),
  };
  const virtiofs = index.has('virtiofs');
  return { busybox, sshd, sshdLibraries: libraries, modules, init, ldCache: request.userland.ldCache, shareTransports: virtiofs ? ['virtiofs', '9p'] : ['9p'] };
}

/** Files whose path, size and mtime stand for their content in the key. */
function inputFiles(inputs: Inputs): string[] {
  const modules = inputs.modules.map((m) => m.file);
  return [inputs.busybox, inputs.sshd.sshd, ...Object.values(inputs.sshd.helpers), ...inputs.sshdLibraries.values(), ...modules, ...(inputs.ldCache !== undefined ? [inputs.ldCache] : [])];
}

async function fingerprint(path: string): Promise<string> {
  const s = await stat(path).catch(() => undefined);
  return s ? `${path} ${s.size} ${s.mtimeMs}` : `${path} absent`;
}

async function imageKey(parts: readonly unknown[], files: readonly string[]): Promise<string> {
  const hash = createHash('sha256');
  hash.update(JSON.stringify(parts));
  for (const file of files) hash.update(`${await fingerprint(file)}\n`);
  return hash.digest('hex').slice(0, 24);
}

const dir = (path: string, mode = 0o755): CpioEntry => ({ kind: 'dir', path, mode });
/** "/opt/builder/bin" → ["opt/builder", "opt/builder/bin"]: the directories under /opt to create. */
const parentDirs = (path: string): string[] =>
  path.slice(1).split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/')).filter((p) => p !== 'opt');
const text = (path: string, data: string, mode = 0o644): CpioEntry => ({ kind: 'file', path, mode, data: Buffer.from(data) });

async function builderEntries(inputs: Inputs, texts: Record<string, { text: string; mode: number }>): Promise<CpioEntry[]> {
  const bb = guestPaths.busyboxDir.slice(1);
  const ssh = guestPaths.sshDir.slice(1);
  const entries: CpioEntry[] = [
    ...['dev', 'etc', 'etc/ssh', 'etc/nix', 'mnt', 'nix', 'nix/store', 'nix/.ro-store', 'nix/.rw-store'].map((p) => dir(p)),
    ...['nix/var', 'nix/var/nix', 'opt', ssh, `${ssh}/lib`, 'proc', 'run', 'sys', 'usr', 'var', 'var/empty'].map((p) => dir(p)),
    ...parentDirs(guestPaths.sessionBinDir).map((p) => dir(p)),
    dir('root', 0o700),
    dir('root/.ssh', 0o700),
    dir('tmp', 0o1777),
    { kind: 'chardev', path: 'dev/console', mode: 0o600, major: 5, minor: 1 },
    { kind: 'chardev', path: 'dev/null', mode: 0o666, major: 1, minor: 3 },
    // merged /usr: these resolve once the host's /usr is mounted
    ...['bin', 'sbin', 'lib', 'lib64'].map((p): CpioEntry => ({ kind: 'symlink', path: p, target: `usr/${p}` })),
    { kind: 'symlink', path: 'etc/mtab', target: '/proc/self/mounts' },
    ...Object.entries(texts).map(([path, t]) => text(path, t.text, t.mode)),
  ];
  entries.push(...(await busyboxEntries(inputs.busybox, bb)));
  entries.push(dir(guestPaths.modulesDir.slice(1)));
  for (const m of inputs.modules) {
    entries.push({ kind: 'file', path: `${guestPaths.modulesDir.slice(1)}/${m.name}.ko`, mode: 0o644, data: await readModule(m.file) });
  }
  entries.push({ kind: 'file', path: `${ssh}/sshd`, mode: 0o755, data: await readFile(inputs.sshd.sshd) });
  for (const [name, path] of Object.entries(inputs.sshd.helpers)) {
    entries.push({ kind: 'file', path: `${ssh}/${name}`, mode: 0o755, data: await readFile(path) });
  }
  for (const [name, path] of [...inputs.sshdLibraries].sort(([a], [b]) => a.localeCompare(b))) {
    entries.push({ kind: 'file', path: `${ssh}/lib/${name}`, mode: 0o644, data: await readFile(path) });
  }
  // without one (Debian's packages), the loader's built-in path finds /usr/lib/<triplet>
  const ldCache = inputs.ldCache === undefined ? undefined : await readFile(inputs.ldCache).catch(() => undefined);
  if (ldCache) entries.push({ kind: 'file', path: 'etc/ld.so.cache', mode: 0o644, data: ldCache });
  return entries;
}

async function busyboxEntries(busybox: string, bb: string): Promise<CpioEntry[]> {
  const applets = await busyboxApplets(busybox);
  return [
    dir(bb),
    { kind: 'file', path: `${bb}/busybox`, mode: 0o755, data: await readFile(busybox) },
    ...applets.map((name): CpioEntry => ({ kind: 'symlink', path: `${bb}/${name}`, target: 'busybox' })),
  ];
}

function builderTexts(init: InitOptions): Record<string, { text: string; mode: number }> {
  const texts: Record<string, { text: string; mode: number }> = { init: { text: initScript(), mode: 0o755 } };
  for (const [name, file] of Object.entries(etcFiles())) texts[`etc/${name}`] = file;
  texts['etc/rc.builder'] = { text: rcBuilder(init), mode: 0o755 };
  texts[guestPaths.collector.slice(1)] = { text: collectorScript(init.tools), mode: 0o755 };
  texts[`${guestPaths.sessionBinDir.slice(1)}/nix-daemon`] = { text: nixDaemonWrapper(init.tools), mode: 0o755 };
  texts[guestPaths.spares.slice(1)] = { text: nixDaemonSpares(init.tools), mode: 0o755 };
  texts[guestPaths.dhcpScript.slice(1)] = { text: dhcpScript(), mode: 0o755 };
  texts[guestPaths.shutdownScript.slice(1)] = { text: shutdownScript(), mode: 0o755 };
  texts[guestPaths.powerButton.slice(1)] = { text: powerButtonScript(), mode: 0o755 };
  texts['etc/ssh/sshd_config'] = { text: sshdConfig(init.sshdExtraConfig), mode: 0o644 };
  return texts;
}

/** Written atomically (temp file, fsync, rename), so a half-written image is never used. */
async function writeImage(path: string, entries: readonly CpioEntry[], compression: Compression): Promise<void> {
  const archive = Buffer.concat(cpioChunks(entries));
  const data = compression === 'gzip' ? gzipSync(archive, { level: 1 }) : archive;
  await writingTo(path, () => mkdir(dirname(path), { recursive: true, mode: 0o700 }), { neededBytes: data.length });
  await writeFileAtomic(path, data, 0o600);
}

const imagePath = (cacheDir: string, name: string, compression: Compression) =>
  join(cacheDir, 'images', `${name}.cpio${compression === 'gzip' ? '.gz' : ''}`);
const isFile = (path: string) => stat(path).then((s) => s.isFile(), () => false);

/** The initramfs for this kernel's modules, from the cache or built now. */
export async function ensureGuestImage(request: GuestImageRequest): Promise<GuestImage> {
  const inputs = await gatherInputs(request);
  const texts = builderTexts(inputs.init);
  const compression = request.compression ?? defaultCompression;
  const key = await imageKey([imageFormat, compression, request.kernelVersion, request.arch, request.userland.imageKey, texts], inputFiles(inputs));
  const path = imagePath(request.cacheDir, `guest-${key}`, compression);
  if (await isFile(path)) return { path, key, built: false, shareTransports: inputs.shareTransports };
  request.log(`building the guest image (${request.kernelVersion}; ${request.userland.description}; sshd: ${inputs.sshd.source})`);
  await writeImage(path, await builderEntries(inputs, texts), compression);
  request.log(`guest image ready: ${basename(path)}`);
  return { path, key, built: true, shareTransports: inputs.shareTransports };
}

/** Printed by the floor image's /init just before it powers off. */
export const floorMarker = 'LINUX-BUILDER-FLOOR';

/** The benchmark's floor: the same kernel with an /init that prints a marker and powers off. */
export async function buildFloorImage(options: {
  cacheDir: string;
  log: (line: string) => void;
  compression?: Compression;
  /** A static busybox of the guest's architecture; default the host's. */
  busybox?: string;
}): Promise<Omit<GuestImage, 'shareTransports'>> {
  const compression = options.compression ?? defaultCompression;
  const busybox = await findBusybox(options.busybox !== undefined ? [options.busybox] : undefined);
  const init = `#!/bb/sh\necho ${floorMarker} > /dev/console\nexec /bb/poweroff -f\n`;
  const key = await imageKey([imageFormat, compression, 'floor', init], [busybox]);
  const path = imagePath(options.cacheDir, `floor-${key}`, compression);
  if (await isFile(path)) return { path, key, built: false };
  options.log('building the floor image');
  await writeImage(path, [
    dir('dev'),
    { kind: 'chardev', path: 'dev/console', mode: 0o600, major: 5, minor: 1 },
    ...(await busyboxEntries(busybox, 'bb')),
    text('init', init, 0o755),
  ], compression);
  return { path, key, built: true };
}
