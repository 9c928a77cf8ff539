/**
 * Where the guest kernel comes from: --kernel, else the host's newest /boot/vmlinuz-* whose
 * modules are installed, else the distribution's kernel package downloaded and unpacked into
 * the cache (never installed). A downloaded kernel is reused without touching the network.
 */
import { constants } from 'node:fs';
import { access, mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { HostArch } from '../drivers/driver.js';
import { badInput, errnoCode, failed } from '../errors.js';
import { writingTo } from '../fs/files.js';
import { hostArch } from '../platform/host.js';
import { readKernelImage, type KernelImageFacts } from './kernel-image.js';
import { debianArch } from '../debian/package-set.js';
import { aptDownload, AptDownloadFailed, unpackDebs, type CommandRunner, type DebFile } from '../debian/download.js';

export type { CommandResult, CommandRunner } from '../debian/download.js';

export interface KernelLocation {
  readonly image: string;
  readonly version: string;
  readonly modulesDir: string | undefined;
  readonly source: 'flag' | 'host' | 'download' | 'debian';
}

export interface LocateKernelOptions {
  readonly explicit?: string | undefined;
  readonly cacheDir: string;
  /** The architecture the kernel is for: the guest's. */
  readonly hostArch: HostArch;
  readonly log: (line: string) => void;
  /** Unpacked package trees whose lib/modules or usr/lib/modules may hold an explicit kernel's modules (Debian's userland). */
  readonly moduleTrees?: readonly string[];
  /** Seams for tests: the host's /boot and /lib/modules, and how commands (apt) run. */
  readonly bootDir?: string;
  readonly modulesRoot?: string;
  readonly run?: CommandRunner;
}

const noKernelHint = 'pass --kernel PATH to a Linux kernel image whose modules are in /lib/modules/<version>';

export async function locateKernel(options: LocateKernelOptions): Promise<KernelLocation> {
  return (await findLocalKernel(options)) ?? download(options);
}

/** The kernel locateKernel would use, without downloading one (for doctor). */
export async function findLocalKernel(options: LocateKernelOptions): Promise<KernelLocation | undefined> {
  const bootDir = options.bootDir ?? '/boot';
  const modulesRoot = options.modulesRoot ?? '/lib/modules';
  if (options.explicit !== undefined) return fromFlag(options.explicit, modulesRoot, options);
  const host = await newestHostKernel(bootDir, modulesRoot, options.log);
  if (host !== undefined) {
    options.log(`using the host kernel ${host.image}`);
    return host;
  }
  const downloaded = await newestDownloadedKernel(kernelsDir(options.cacheDir), options.hostArch);
  if (downloaded !== undefined) {
    options.log(`using the kernel downloaded earlier: ${downloaded.image}`);
    return downloaded;
  }
  return undefined;
}

function kernelsDir(cacheDir: string): string {
  return join(cacheDir, 'kernels');
}

// ---- --kernel PATH ---------------------------------------------------------------------

async function checkedFile(path: string): Promise<void> {
  let isFile: boolean;
  try {
    isFile = (await stat(path)).isFile();
    await access(path, constants.R_OK);
  } catch (error) {
    const why = errnoCode(error) === 'ENOENT' ? 'does not exist' : 'is not readable';
    throw badInput(`--kernel ${path} ${why}`, noKernelHint);
  }
  if (!isFile) throw badInput(`--kernel ${path} is not a file`, noKernelHint);
}

/** The facts of an explicit kernel, which must be a readable file with a kernel for arch (bad input otherwise). */
export async function checkKernelImage(path: string, arch: HostArch): Promise<KernelImageFacts> {
  await checkedFile(path);
  const facts = await readKernelImage(path);
  if (facts.arch !== undefined && facts.arch !== arch) {
    throw badInput(
      `--kernel ${path} is an ${facts.arch} kernel, but the guest is ${arch}`,
      `pass --kernel with an ${arch} kernel${arch === 'aarch64' ? ' (Image, Image.gz, or Debian\'s vmlinuz-*-arm64)' : ''}, or change --arch; a remembered --kernel is "kernel" in the instance's config.json`,
    );
  }
  return facts;
}

async function fromFlag(path: string, modulesRoot: string, options: LocateKernelOptions): Promise<KernelLocation> {
  const facts = await checkKernelImage(path, options.hostArch);
  const version = facts.version ?? versionFromFileName(basename(path));
  if (version === undefined) {
    options.log(`cannot tell the version of ${path}: booting it without kernel modules`);
    return { image: path, version: 'unknown', modulesDir: undefined, source: 'flag' };
  }
  const modulesDir = await firstDirectory([
    // the host's modules are of the host's architecture
    ...(facts.arch === undefined || facts.arch === hostArch() ? [join(modulesRoot, version)] : []),
    // beside it: boot/ and lib/ of an unpacked package, or lib/ in the kernel's own directory
    ...treeModuleDirs(join(dirname(path), '..'), version),
    ...treeModuleDirs(dirname(path), version),
    ...(options.moduleTrees ?? []).flatMap((tree) => treeModuleDirs(tree, version)),
    ...(await downloadedTrees(kernelsDir(options.cacheDir))).flatMap((tree) => treeModuleDirs(tree, version)),
  ]);
  if (modulesDir === undefined) options.log(`no modules found for kernel ${version}: booting without them`);
  return { image: path, version, modulesDir, source: 'flag' };
}

/** "vmlinuz-6.1.0-56-amd64" → "6.1.0-56-amd64". */
export function versionFromFileName(name: string): string | undefined {
  const match = /^(?:vmlinuz|vmlinux|bzImage|Image)-(\d+\.\d+.*)$/.exec(name);
  return match?.[1];
}

// ---- the host's kernels ----------------------------------------------------------------

/** Compares kernel versions chunk by chunk, numbers as numbers: 6.1.0-10 > 6.1.0-9. */
export function compareKernelVersions(a: string, b: string): number {
  const chunks = (v: string): string[] => v.match(/\d+|[^\d]+/g) ?? [];
  const left = chunks(a);
  const right = chunks(b);
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    const x = left[i];
    const y = right[i];
    if (x === undefined || y === undefined) return x === undefined ? -1 : 1;
    const numeric = /^\d/.test(x) && /^\d/.test(y);
    const order = numeric ? Number(x) - Number(y) : x < y ? -1 : x > y ? 1 : 0;
    if (order !== 0) return Math.sign(order);
  }
  return 0;
}

/** The versions of vmlinuz-* files that have a modules directory, newest first. */
export function hostKernelVersions(bootFiles: readonly string[], moduleVersions: readonly string[]): string[] {
  const withModules = new Set(moduleVersions);
  return bootFiles
    .filter((name) => name.startsWith('vmlinuz-'))
    .map((name) => name.slice('vmlinuz-'.length))
    .filter((version) => withModules.has(version))
    .sort((a, b) => compareKernelVersions(b, a));
}

async function newestHostKernel(bootDir: string, modulesRoot: string, log: (line: string) => void): Promise<KernelLocation | undefined> {
  const versions = hostKernelVersions(await listDir(bootDir), await listDir(modulesRoot));
  for (const version of versions) {
    const image = join(bootDir, `vmlinuz-${version}`);
    if (await readable(image)) return { image, version, modulesDir: join(modulesRoot, version), source: 'host' };
    log(`skipping ${image}: not readable by this user`);
  }
  return undefined;
}

// ---- the distribution's kernel package -------------------------------------------------

/** Unpacked package trees under kernels/, named "<package>_<version>". */
async function downloadedTrees(dir: string): Promise<string[]> {
  return (await listDir(dir)).filter((name) => /^linux-image-[^_]+_[^_]+$/.test(name)).map((name) => join(dir, name));
}

async function newestDownloadedKernel(dir: string, arch: HostArch): Promise<KernelLocation | undefined> {
  const suffix = `-${debianArch(arch)}_`;
  let newest: KernelLocation | undefined;
  for (const tree of await downloadedTrees(dir)) {
    if (!basename(tree).includes(suffix)) continue;
    const found = await kernelInTree(tree);
    if (found !== undefined && (newest === undefined || compareKernelVersions(found.version, newest.version) > 0)) newest = found;
  }
  return newest;
}

/** The newest boot/vmlinuz-* of an unpacked package tree, with its modules under lib/modules or usr/lib/modules. */
export async function kernelInTree(tree: string): Promise<KernelLocation | undefined> {
  const bootDir = join(tree, 'boot');
  const versions = (await listDir(bootDir))
    .map(versionFromFileName)
    .filter((v): v is string => v !== undefined)
    .sort((a, b) => compareKernelVersions(b, a));
  const version = versions[0];
  if (version === undefined) return undefined;
  return {
    image: join(bootDir, `vmlinuz-${version}`),
    version,
    modulesDir: await firstDirectory(treeModuleDirs(tree, version)),
    source: 'download',
  };
}

function treeModuleDirs(tree: string, version: string): string[] {
  return [join(tree, 'lib', 'modules', version), join(tree, 'usr', 'lib', 'modules', version)];
}

/** The real image package a kernel metapackage (linux-image-amd64) depends on. */
export function kernelImageDependency(meta: DebFile): string | undefined {
  return meta.depends.flat().find((requirement) => /^linux-image-\d/.test(requirement.name))?.name;
}

async function download(options: LocateKernelOptions): Promise<KernelLocation> {
  const dir = kernelsDir(options.cacheDir);
  return writingTo(dir, () => downloadInto(dir, options), { what: 'downloading and unpacking the kernel package into kernels/' });
}

const noHostKernel = 'no kernel to boot: no /boot/vmlinuz-* with modules in /lib/modules';

/** apt-get download of one package into its own directory under work. */
async function aptPackage(name: string, work: string, options: LocateKernelOptions): Promise<DebFile> {
  try {
    const [deb] = await aptDownload([name], join(work, name), options.run);
    if (deb === undefined) throw new AptDownloadFailed('failed', 'no .deb written', '');
    return deb;
  } catch (error) {
    if (!(error instanceof AptDownloadFailed)) throw error;
    if (error.kind === 'no-apt') throw failed(`${noHostKernel}, and no apt-get to download one`, noKernelHint, error);
    if (error.kind === 'unknown') {
      throw failed(`${noHostKernel}, and apt knows no package ${name} (${error.detail})`, `run apt-get update (as root) so apt knows the kernel package, or ${noKernelHint}`, error);
    }
    throw failed(`could not download ${name}: ${error.detail}`, `check the network and the apt sources (apt-get update), or ${noKernelHint}`, error);
  }
}

async function downloadInto(dir: string, options: LocateKernelOptions): Promise<KernelLocation> {
  const meta = `linux-image-${debianArch(options.hostArch)}`;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const work = await mkdtemp(join(dir, '.download-'));
  try {
    options.log(`no host kernel with modules: downloading ${meta} from the distribution mirror (unpacked into the cache, not installed)`);
    const pkg = kernelImageDependency(await aptPackage(meta, work, options));
    if (pkg === undefined) throw failed(`${meta} depends on no linux-image package`, `run apt-get update (as root), or ${noKernelHint}`);
    const image = await aptPackage(pkg, work, options);
    const unpacked = join(work, 'root');
    await unpackDebs([image.path], unpacked);
    const tree = join(dir, `${image.name}_${image.version.replace(/[^\w.+~-]/g, '_')}`);
    await renameUnlessPresent(unpacked, tree);
    const found = await kernelInTree(tree);
    if (found === undefined) throw failed(`${image.name} ${image.version} holds no boot/vmlinuz-*`, noKernelHint);
    options.log(`downloaded kernel ${found.version} into ${tree}`);
    return found;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Atomic publish; if another process published the same tree first, theirs stays. */
async function renameUnlessPresent(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (error) {
    const code = errnoCode(error);
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error;
  }
}

// ---- small file helpers ----------------------------------------------------------------

async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

async function readable(path: string): Promise<boolean> {
  try {
    await access(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

async function firstDirectory(candidates: readonly string[]): Promise<string | undefined> {
  for (const candidate of candidates) {
    try {
      if ((await stat(candidate)).isDirectory()) return candidate;
    } catch {
      // try the next one
    }
  }
  return undefined;
}
