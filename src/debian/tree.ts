/**
 * The cache of the Debian fetcher, under <cache>/debian/:
 *   indexes/<sha256>       Packages files, named by the hash InRelease signed
 *   debs/<sha256>.deb      packages, named by the hash their Packages entry gave
 *   trees/<key>/           unpacked package sets: root/ and manifest.json; key from names, versions, hashes
 *   requests/<key>.json    which tree answered a request (suite, architecture, names) last
 *   users/<id>.json        which trees an instance holds (users.ts), and lock, which guards them
 * Everything appears by rename once complete, so what has its final name is whole; temp names
 * carry the pid that writes them, so a later fetch can remove what a dead one left.
 */
import { createHash } from 'node:crypto';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode } from '../errors.js';
import { isAlive } from '../platform/process.js';
import { z } from 'zod';
import { readVersionedJsonOrUndefined, versionedFile } from '../fs/versioned-json.js';
import type { DebianArch } from './package-set.js';
import type { PackageEntry } from './packages.js';
import type { PackageRequest } from './resolve.js';

export interface DebianCache {
  readonly dir: string;
  readonly indexes: string;
  readonly debs: string;
  readonly trees: string;
  readonly requests: string;
  readonly users: string;
}

export function debianCache(cacheDir: string): DebianCache {
  const dir = join(cacheDir, 'debian');
  return { dir, indexes: join(dir, 'indexes'), debs: join(dir, 'debs'), trees: join(dir, 'trees'), requests: join(dir, 'requests'), users: join(dir, 'users') };
}

const treePackageSchema = z.object({ name: z.string(), version: z.string(), sha256: z.string().regex(/^[0-9a-f]{64}$/) });
/** A package in a tree, as its manifest lists it. */
export type TreePackage = z.infer<typeof treePackageSchema>;

const treeManifestSchema = z.object({
  format: z.literal(1),
  suite: z.string(),
  arch: z.enum(['amd64', 'arm64']),
  packages: z.array(treePackageSchema),
});
export type TreeManifest = z.infer<typeof treeManifestSchema>;
export const treeManifestFile = versionedFile(treeManifestSchema, 1, 'format');

/** Pointer from a request to the tree that last answered it. */
const requestRecordSchema = z.object({
  format: z.literal(1),
  tree: z.string().regex(/^[0-9a-f]{32}$/),
  mirror: z.string(),
  /** The InRelease Date of the index the tree was resolved from. */
  released: z.string(),
});
export type RequestRecord = z.infer<typeof requestRecordSchema>;
export const requestRecordFile = versionedFile(requestRecordSchema, 1, 'format');

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

export function treeKey(suite: string, arch: DebianArch, packages: readonly PackageEntry[]): string {
  const lines = packages.map((p) => `${p.name} ${p.version} ${p.sha256}`).sort();
  return sha256(['tree 1', suite, arch, ...lines].join('\n')).slice(0, 32);
}

export function requestKey(suite: string, arch: DebianArch, request: PackageRequest): string {
  const names = [...request.packages].sort().join(' ');
  const skip = [...(request.skip ?? [])].sort().join(' ');
  return sha256(['request 1', suite, arch, names, skip].join('\n')).slice(0, 32);
}

export function manifestPath(treeDir: string): string {
  return join(treeDir, 'manifest.json');
}

/** A tree's manifest, or undefined when the tree is not (wholly) there or another version made it. */
export function readManifest(treeDir: string): Promise<TreeManifest | undefined> {
  return readVersionedJsonOrUndefined(manifestPath(treeDir), treeManifestFile);
}

export function readRequest(path: string): Promise<RequestRecord | undefined> {
  return readVersionedJsonOrUndefined(path, requestRecordFile);
}

export async function fileSize(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined;
    throw error;
  }
}

/** A temp name owned by this process: "<base>.<pid>-<random>.<suffix>". */
export function tempName(base: string, suffix: string): string {
  return `${base}.${process.pid}-${Math.random().toString(16).slice(2, 10)}.${suffix}`;
}

/** Removes temp files and directories in dir whose writer has died (an interrupted fetch or removal). */
export async function removeAbandoned(dir: string): Promise<void> {
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const match = /\.(\d+)-[0-9a-f]+\.(part|unpack|prune)$/.exec(name);
    if (match && !(await isAlive(Number(match[1])))) await rm(join(dir, name), { recursive: true, force: true });
  }
}
