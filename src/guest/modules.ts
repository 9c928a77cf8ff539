/**
 * The kernel modules the guest loads before anything else can run: found in the kernel's
 * modules dir, ordered so dependencies load first, decompressed at build time because busybox
 * insmod cannot read compressed modules.
 */
import { spawn } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { errnoCode, failed } from '../errors.js';
import { moduleInfo, moduleInfoOfFile } from './elf.js';

/** Needed to boot: virtio transports (mmio for microvm, pci for q35/virt), net, rng, 9p, overlay, binfmt. */
export const builderModules = [
  'virtio_mmio',
  'virtio_pci',
  'virtio_net',
  'virtio_rng',
  '9pnet_virtio',
  '9p',
  'overlay',
  'binfmt_misc',
] as const;

/** For the instance disk: the image always has them; the guest loads them only when a disk is attached. */
export const diskModules = ['virtio_blk', 'crc32c_generic', 'ext4'] as const;

export interface ModuleEntry {
  /** Relative to the modules dir, as modules.dep/modules.order write it. */
  readonly path: string;
  readonly deps: readonly string[];
}

/** A module to load, in order: its name, the file under the modules dir, and the modules it needs. */
export interface GuestModule {
  readonly name: string;
  readonly file: string;
  /** Loadable modules (not built-ins) that must be in the kernel first. */
  readonly deps: readonly string[];
}

/** The kernel treats "-" and "_" in module names alike. */
export function normalizeModuleName(name: string): string {
  return name.replaceAll('-', '_');
}

export function moduleNameOf(path: string): string {
  return normalizeModuleName(basename(path).replace(/\.ko(\.xz|\.zst|\.gz)?$/, ''));
}

/** modules.dep: "kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/netfs/netfs.ko". */
export function parseModulesDep(text: string): Map<string, ModuleEntry> {
  const table = new Map<string, ModuleEntry>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const path = line.slice(0, colon).trim();
    const deps = line.slice(colon + 1).trim().split(/\s+/).filter(Boolean).map(moduleNameOf);
    table.set(moduleNameOf(path), { path, deps });
  }
  return table;
}

/** modules.builtin / modules.order: one module path a line. */
export function parseModuleList(text: string): string[] {
  return text.split('\n').map((line) => line.trim()).filter(Boolean);
}

/**
 * The dependency closure of wanted (and of those optional modules this kernel has), deps first,
 * without built-ins. Throws a UserError naming the first module that is neither.
 */
export function resolveModuleOrder(
  wanted: readonly string[],
  optional: readonly string[],
  table: ReadonlyMap<string, ModuleEntry>,
  builtin: ReadonlySet<string>,
  modulesDir: string,
): Array<{ name: string; path: string; deps: string[] }> {
  const order: Array<{ name: string; path: string; deps: string[] }> = [];
  const done = new Set<string>();
  const visit = (raw: string, chain: readonly string[]) => {
    const name = normalizeModuleName(raw);
    if (done.has(name) || builtin.has(name)) return;
    if (chain.includes(name)) throw failed(`kernel modules depend on each other in a cycle: ${[...chain, name].join(' -> ')}`);
    const entry = table.get(name);
    if (!entry) {
      const neededBy = chain.length > 0 ? ` (needed by ${chain.at(-1)})` : '';
      throw failed(
        `the kernel has no module ${name}${neededBy} in ${modulesDir}`,
        'use a kernel with virtio, 9p and overlayfs support (built in or as modules), e.g. the distribution kernel',
      );
    }
    for (const dep of entry.deps) visit(dep, [...chain, name]);
    done.add(name);
    order.push({ name, path: entry.path, deps: entry.deps.map(normalizeModuleName).filter((dep) => !builtin.has(dep)) });
  };
  for (const name of wanted) visit(name, []);
  for (const name of optional) if (table.has(normalizeModuleName(name))) visit(name, []);
  return order;
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined;
    throw error;
  }
}

/** The files a modules.order path may have on disk (distributions compress after depmod). */
const onDiskSuffixes = ['', '.xz', '.zst', '.gz'];

/**
 * A kernel's modules dir, read once however many groups of modules are looked up in it: a boot
 * resolves eight groups, and each used to read and index modules.order (thousands of lines)
 * again. Its built-ins and dependency table come from modules.dep; without it (a kernel package
 * extracted, never installed, so depmod never ran) from modules.order and each needed module's
 * own "depends=" field, read once per module.
 */
export class ModuleIndex {
  /** Modules read so far (all of them when modules.dep was there). */
  private readonly table: Map<string, ModuleEntry>;

  private constructor(
    readonly modulesDir: string,
    private readonly builtin: ReadonlySet<string>,
    dep: Map<string, ModuleEntry> | undefined,
    /** name → path from modules.order, when there is no modules.dep. */
    private readonly paths: ReadonlyMap<string, string> | undefined,
  ) {
    this.table = dep ?? new Map();
  }

  static async open(modulesDir: string): Promise<ModuleIndex> {
    const builtin = new Set(parseModuleList((await readOptional(join(modulesDir, 'modules.builtin'))) ?? '').map(moduleNameOf));
    const depText = await readOptional(join(modulesDir, 'modules.dep'));
    if (depText !== undefined) return new ModuleIndex(modulesDir, builtin, parseModulesDep(depText), undefined);
    const orderText = await readOptional(join(modulesDir, 'modules.order'));
    if (orderText === undefined) {
      throw failed(`${modulesDir} has neither modules.dep nor modules.order`, 'is this a kernel modules directory?');
    }
    return new ModuleIndex(modulesDir, builtin, undefined, new Map(parseModuleList(orderText).map((path) => [moduleNameOf(path), path])));
  }

  /** The kernel has the module, built in or as a file. */
  has(name: string): boolean {
    const wanted = normalizeModuleName(name);
    return this.builtin.has(wanted) || (this.paths ?? this.table).has(wanted);
  }

  /** Resolves wanted (+ optional where present) into load order, with each module's file. */
  async find(wanted: readonly string[], optional: readonly string[] = []): Promise<GuestModule[]> {
    if (this.paths !== undefined) await this.readModinfo([...wanted, ...optional], this.paths);
    const order = resolveModuleOrder(wanted, optional, this.table, this.builtin, this.modulesDir);
    const found: GuestModule[] = [];
    for (const { name, path, deps } of order) {
      found.push({ name, file: await existingModuleFile(this.modulesDir, path), deps });
    }
    return found;
  }

  /** Adds the dependency closure of names to the table, from each module's .modinfo. */
  private async readModinfo(names: readonly string[], paths: ReadonlyMap<string, string>): Promise<void> {
    const queue = names.map(normalizeModuleName);
    for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
      const path = paths.get(name);
      if (path === undefined || this.table.has(name) || this.builtin.has(name)) continue;
      const file = await existingModuleFile(this.modulesDir, path);
      // an uncompressed module is not read whole: only its .modinfo (it runs at every boot)
      const info = file.endsWith('.ko') ? await moduleInfoOfFile(file) : moduleInfo(await readModule(file));
      const depends = info.find(([key]) => key === 'depends')?.[1] ?? '';
      const deps = depends.split(',').filter(Boolean).map(normalizeModuleName);
      this.table.set(name, { path, deps });
      queue.push(...deps);
    }
  }
}

/** Resolves wanted (+ optional where present) into load order, with each module's file. */
export async function findGuestModules(
  modulesDir: string,
  wanted: readonly string[],
  optional: readonly string[] = [],
): Promise<GuestModule[]> {
  return (await ModuleIndex.open(modulesDir)).find(wanted, optional);
}

/**
 * Modules (deps first) as levels loaded one after another: a module's level comes after the
 * levels of all its deps, so the modules of one level can load in parallel. Deps not in the
 * list count as loaded already.
 */
export function loadLevels(modules: ReadonlyArray<{ readonly name: string; readonly deps: readonly string[] }>): string[][] {
  const levelOf = new Map<string, number>();
  const levels: string[][] = [];
  for (const { name, deps } of modules) {
    const level = Math.max(-1, ...deps.map((dep) => levelOf.get(dep) ?? -1)) + 1;
    levelOf.set(name, level);
    (levels[level] ??= []).push(name);
  }
  return levels;
}

async function existingModuleFile(modulesDir: string, path: string): Promise<string> {
  const plain = path.replace(/\.(xz|zst|gz)$/, '');
  for (const suffix of onDiskSuffixes) {
    const file = join(modulesDir, plain + suffix);
    if (await stat(file).then(() => true, () => false)) return file;
  }
  throw failed(`kernel module file ${path} is missing from ${modulesDir}`);
}

/** The module's ELF bytes: .ko as is, .ko.gz/.xz/.zst decompressed. */
export async function decompressModule(file: string, data: Buffer): Promise<Buffer> {
  if (file.endsWith('.gz')) return gunzipSync(data);
  if (file.endsWith('.xz')) return await decompressWith('xz', file, data);
  if (file.endsWith('.zst')) return await decompressWith('zstd', file, data);
  return data;
}

async function decompressWith(tool: 'xz' | 'zstd', file: string, data: Buffer): Promise<Buffer> {
  return await new Promise((resolve, reject) => {
    const child = spawn(tool, ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', (error) =>
      reject(failed(`cannot run ${tool} to decompress ${file}`, `install ${tool === 'xz' ? 'xz-utils' : 'zstd'}`, error)),
    );
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(failed(`${tool} could not decompress ${file}: ${Buffer.concat(err).toString().trim()}`));
    });
    child.stdin.on('error', () => undefined); // a dying child closes stdin early; 'close' reports it
    child.stdin.end(data);
  });
}

/** Reads and decompresses one module file. */
export async function readModule(file: string): Promise<Buffer> {
  return await decompressModule(file, await readFile(file));
}

