/**
 * Debian packages for the guest, fetched and unpacked by us: no apt, no dpkg, so it runs on
 * macOS and NixOS as well as on Debian.
 *
 * For one architecture of the pinned suite, from a mirror: InRelease verified against the Debian
 * archive keys shipped in keys/; the Packages index checked against InRelease's SHA256; the
 * request resolved over Depends and Pre-Depends (resolve.ts); each .deb checked against its
 * Packages SHA256 and Size, cached by hash; all of them unpacked (deb.ts) into a tree under the
 * cache named by the resolved set, published by rename. A tree once fetched answers the same
 * request again without the network; `refresh` asks the mirror first and falls back to the tree
 * when the mirror cannot be reached.
 */
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { errnoCode, failed } from '../errors.js';
import { writingTo } from '../fs/files.js';
import { writeVersionedJson } from '../fs/versioned-json.js';
import { unpackDeb, UnpackTarget, PathEscape } from './deb.js';
import { decompressed } from './decompress.js';
import { mirrorDownload } from './download.js';
import { downloadVerified, fetchText, MirrorUnreachable } from './fetch.js';
import { debianArch, type DebianArch } from './package-set.js';
import type { FetchProgress } from './progress.js';
import { parsePackages, type PackageEntry, type PackageIndex } from './packages.js';
import { debianArchiveKeys, parseRelease, verifiedText, BadSignature, type ArchiveKeys, type Release } from './release.js';
import { resolvePackages, type PackageRequest } from './resolve.js';
import {
  debianCache, fileSize, manifestPath, readManifest, readRequest, removeAbandoned, requestKey, requestRecordFile, tempName, treeKey, treeManifestFile,
  type DebianCache, type TreeManifest, type TreePackage,
} from './tree.js';
import { holdTree, holdTreeToo } from './users.js';
import { fileSha256 } from '../fs/files.js';
import { compareVersions } from './version.js';

export { debianArch, guestPackageRequest, guestPackages, emulatorPackages, kernelPackage, notForTheGuest, type DebianArch } from './package-set.js';
export type { PackageRequest } from './resolve.js';
export { debianArchiveKeys, type ArchiveKeys } from './release.js';
export { MirrorUnreachable } from './fetch.js';
export { progressLine, type FetchProgress } from './progress.js';

/** The Debian release the guest's userland comes from. */
export const debianSuite = 'trixie';
export const defaultMirror = 'http://deb.debian.org/debian';
const component = 'main';

export interface DebianTree {
  /** The unpacked files: root/usr, root/boot, … */
  readonly root: string;
  readonly key: string;
  readonly packages: readonly TreePackage[];
}

export interface ResolveOptions {
  readonly cacheDir: string;
  readonly arch: 'x86_64' | 'aarch64';
  readonly request: PackageRequest;
  readonly mirror?: string;
  /** The keys InRelease must be signed with; Debian's archive keys unless a test passes its own. */
  readonly keys?: ArchiveKeys;
}

export interface DebianUserlandOptions extends ResolveOptions {
  /** Ask the mirror for a newer set even when a tree for the request is cached. */
  readonly refresh?: boolean;
  readonly onProgress?: (progress: FetchProgress) => void;
  readonly log?: (line: string) => void;
  /**
   * The instance (its state dir) that boots the tree: it holds the tree, so nothing removes it,
   * and trees it held before are removed once no instance holds them (users.ts).
   */
  readonly instance?: string;
}

/** A request resolved against the mirror's current index: what a fetch would download and unpack. */
export interface ResolvedSet {
  readonly mirror: string;
  readonly arch: DebianArch;
  /** The InRelease Date of the index. */
  readonly released: string;
  readonly packages: readonly PackageEntry[];
  /** The tree's name in the cache. */
  readonly key: string;
}

/** Resolves a request from the mirror's signed index (the index is cached by hash); downloads no package. */
export async function resolveDebianSet(options: ResolveOptions): Promise<ResolvedSet> {
  const cache = debianCache(options.cacheDir);
  const arch = debianArch(options.arch);
  const mirror = (options.mirror ?? defaultMirror).replace(/\/+$/, '');
  const release = await fetchRelease(mirror, arch, options.keys ?? (await debianArchiveKeys()));
  const index = await writingTo(cache.indexes, () => packagesIndex(cache, mirror, arch, release), { what: 'downloading the Debian package index' });
  const packages = resolvePackages(index, options.request, `Debian ${debianSuite} (${arch}) on ${mirror}`);
  return { mirror, arch, released: release.date, packages, key: treeKey(debianSuite, arch, packages) };
}

/** The unpacked tree for a request: from the cache when it has one, else fetched from the mirror. */
export async function debianUserland(options: DebianUserlandOptions): Promise<DebianTree> {
  const cache = debianCache(options.cacheDir);
  const arch = debianArch(options.arch);
  const log = options.log ?? (() => undefined);
  const progress = options.onProgress ?? (() => undefined);
  const requestFile = join(cache.requests, `${requestKey(debianSuite, arch, options.request)}.json`);
  const { instance } = options;
  /** The tree held for the instance; undefined when it was removed before it could be held. */
  const held = async (tree: DebianTree): Promise<DebianTree | undefined> =>
    instance === undefined || (await holdTree(cache, instance, tree.key, log)) ? tree : undefined;
  let known = await knownTree(cache, requestFile);
  if (known !== undefined && options.refresh !== true) {
    known = await held(known);
    if (known !== undefined) return known;
  }
  progress({ stage: 'index', packagesDone: 0, packagesTotal: 0, bytesDone: 0, bytesTotal: 0 });
  let set: ResolvedSet;
  try {
    set = await resolveDebianSet(options);
  } catch (error) {
    if (!(error instanceof MirrorUnreachable)) throw error;
    const fallback = known === undefined ? undefined : await held(known);
    if (fallback !== undefined) {
      log(`${error.message}: using the Debian packages fetched before`);
      return fallback;
    }
    throw failed(
      `${error.message}, and the cache has no Debian ${debianSuite} packages for ${arch} yet (${options.request.packages.join(', ')})`,
      `connect to the network or pass --mirror with a reachable Debian mirror, or copy ${cache.dir} from a machine that has fetched them`,
      error,
    );
  }
  const treeDir = join(cache.trees, set.key);
  return writingTo(cache.dir, async () => {
    // held before it is looked at or built: no removal takes it, or the packages it is built from
    if (instance !== undefined) await holdTreeToo(cache, instance, set.key);
    const manifest = (await readManifest(treeDir)) ?? (await buildTree(cache, set, progress, log));
    await mkdir(cache.requests, { recursive: true });
    await writeVersionedJson(requestFile, requestRecordFile, { format: 1, tree: set.key, mirror: set.mirror, released: set.released }, 0o644);
    const tree = { root: join(treeDir, 'root'), key: set.key, packages: manifest.packages };
    if (instance !== undefined) await holdTree(cache, instance, set.key, log);
    return tree;
  }, { what: `fetching Debian packages into ${cache.dir}` });
}

async function knownTree(cache: DebianCache, requestFile: string): Promise<DebianTree | undefined> {
  const record = await readRequest(requestFile);
  if (record === undefined) return undefined;
  const treeDir = join(cache.trees, record.tree);
  const manifest = await readManifest(treeDir);
  return manifest === undefined ? undefined : { root: join(treeDir, 'root'), key: record.tree, packages: manifest.packages };
}

async function fetchRelease(mirror: string, arch: DebianArch, keys: ArchiveKeys): Promise<Release> {
  const url = `${mirror}/dists/${debianSuite}/InRelease`;
  const signed = await fetchText(url, `the ${debianSuite} release file (InRelease)`);
  let release: Release;
  try {
    release = parseRelease(await verifiedText(signed, keys));
  } catch (error) {
    if (!(error instanceof BadSignature)) throw error;
    throw failed(`${url} is not signed by Debian: ${error.message}`, 'the mirror or the network altered it; pass --mirror with another Debian mirror', error);
  }
  // a validly signed file of another release, served in this one's place, would downgrade the guest
  if (release.codename !== debianSuite) throw failed(`${url} is the release file of ${release.codename || 'an unnamed suite'}, not ${debianSuite}`, 'pass --mirror with a Debian mirror that carries trixie');
  if (![...release.files.keys()].some((path) => path.startsWith(`${component}/binary-${arch}/`))) {
    throw failed(`Debian ${debianSuite} on ${mirror} has no packages for ${arch}`, 'pass --mirror with a Debian mirror that carries this architecture');
  }
  return release;
}

/** The suite's Packages index for arch: from the cache when InRelease names a hash we have, else downloaded. */
async function packagesIndex(cache: DebianCache, mirror: string, arch: DebianArch, release: Release): Promise<PackageIndex> {
  const base = `${component}/binary-${arch}/Packages`;
  const compression = ['.xz', '.gz', ''].find((suffix) => release.files.has(`${base}${suffix}`));
  const signed = compression === undefined ? undefined : release.files.get(`${base}${compression}`);
  if (compression === undefined || signed === undefined) throw failed(`the ${debianSuite} release file lists no ${base} index`, 'pass --mirror with a complete Debian mirror');
  const path = join(cache.indexes, signed.sha256);
  if ((await fileSize(path)) !== signed.size) {
    await mkdir(cache.indexes, { recursive: true });
    await removeAbandoned(cache.indexes);
    await downloadVerified(`${mirror}/dists/${debianSuite}/${base}${compression}`, path, signed, `the ${arch} package index (${base}${compression})`);
  }
  return parsePackages(await text(await decompressed(path, compression)), compareVersions);
}

/** Downloads what the cache lacks, unpacks every package into a temp tree, and publishes it by rename. */
async function buildTree(cache: DebianCache, set: ResolvedSet, progress: (progress: FetchProgress) => void, log: (line: string) => void): Promise<TreeManifest> {
  const { mirror, arch, packages, key } = set;
  await mkdir(cache.debs, { recursive: true });
  await mkdir(cache.trees, { recursive: true });
  await removeAbandoned(cache.debs);
  await removeAbandoned(cache.trees);
  const debPath = (p: PackageEntry): string => join(cache.debs, `${p.sha256}.deb`);
  const missing: PackageEntry[] = [];
  for (const p of packages) if ((await fileSize(debPath(p))) !== p.size) missing.push(p);
  const bytesTotal = missing.reduce((sum, p) => sum + p.size, 0);
  if (missing.length > 0) log(`downloading ${missing.length} Debian packages (${(bytesTotal / 2 ** 20).toFixed(1)} MiB) from ${mirror}`);
  let bytesDone = 0;
  let packagesDone = 0;
  const report = (stage: FetchProgress['stage'], total: number): void => progress({ stage, packagesDone, packagesTotal: total, bytesDone, bytesTotal });
  report('download', missing.length);
  await inParallel(missing, 4, async (p) => {
    await mirrorDownload(mirror, p, debPath(p), (bytes) => {
      bytesDone += bytes;
      report('download', missing.length);
    });
    packagesDone++;
    report('download', missing.length);
  });

  const work = join(cache.trees, tempName(key, 'unpack'));
  try {
    await mkdir(join(work, 'root'), { recursive: true });
    const target = new UnpackTarget(join(work, 'root'));
    packagesDone = 0;
    for (const p of packages) {
      report('unpack', packages.length);
      // a cached file is checked again: a damaged cache must not become a tree
      if ((await fileSha256(debPath(p))) !== p.sha256) {
        await rm(debPath(p), { force: true });
        throw failed(`the cached ${p.name} ${p.version} is damaged (its SHA256 changed); it was removed`, 'run the same command again to download it anew');
      }
      try {
        await unpackDeb(debPath(p), target);
      } catch (error) {
        if (error instanceof PathEscape) throw failed(`${p.name} ${p.version} cannot be unpacked safely: ${error.message}`, 'pass --mirror with another Debian mirror', error);
        if (errnoCode(error) !== undefined) throw error;
        throw failed(`cannot unpack ${p.name} ${p.version}: ${error instanceof Error ? error.message : String(error)}`, 'pass --mirror with another Debian mirror', error);
      }
      packagesDone++;
    }
    report('unpack', packages.length);
    await target.finish();
    const manifest: TreeManifest = {
      format: 1, suite: debianSuite, arch, packages: packages.map((p) => ({ name: p.name, version: p.version, sha256: p.sha256 })),
    };
    await writeVersionedJson(manifestPath(work), treeManifestFile, manifest, 0o644);
    try {
      await rename(work, join(cache.trees, key));
    } catch (error) {
      // another fetch published the same tree first; its tree is as good as ours
      if (errnoCode(error) !== 'ENOTEMPTY' && errnoCode(error) !== 'EEXIST') throw error;
    }
    log(`unpacked ${packages.length} Debian packages into ${join(cache.trees, key)}`);
    return manifest;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Runs up to width at a time; after a failure starts no more, and throws the first once the running ones end. */
async function inParallel<T>(items: readonly T[], width: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < items.length && failure === undefined) {
      const item = items[next++] as T;
      try {
        await run(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  if (failure !== undefined) throw failure.error;
}
