/**
 * Which instances use which Debian tree, and the removal of trees none uses any more.
 *
 * Trees are named by their content, so a new package set (other --systems or --arch, a newer
 * linux-builder) makes a new tree and the old one stays behind, some 750 MiB each. An instance
 * holds the tree it boots: users/<id>.json names its state dir and the trees it holds — one, and
 * while a new one is fetched also the one before, so a failed fetch never costs the tree that
 * worked. When an instance comes to hold one tree alone, the trees it let go, and those of
 * instances whose state dir is gone, are removed unless another instance holds them, with the
 * packages no remaining tree lists. Never removed: a tree any process names on its command line
 * (a running VM, whichever version started it), or one nobody ever held (its users are
 * unknown). All of it under one lock per cache, so a start never loses a tree it is taking.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { errnoCode } from '../errors.js';
import { acquireLock } from '../fs/lock.js';
import { readVersionedJsonOrUndefined, versionedFile, writeVersionedJson } from '../fs/versioned-json.js';
import { listProcesses } from '../platform/process.js';
import { readManifest, readRequest, tempName, type DebianCache } from './tree.js';

const treeKeyPattern = /^[0-9a-f]{32}$/;

const holdSchema = z.object({
  format: z.literal(1),
  /** The instance's state dir: while it exists, the instance may boot these trees again. */
  instance: z.string(),
  trees: z.array(z.string().regex(treeKeyPattern)),
});
type Hold = z.infer<typeof holdSchema>;
const holdFile = versionedFile(holdSchema, 1, 'format');

const lockWaitMs = 5 * 60_000;

function holdPath(cache: DebianCache, instance: string): string {
  return join(cache.users, `${createHash('sha256').update(instance).digest('hex').slice(0, 32)}.json`);
}

async function underLock<T>(cache: DebianCache, work: () => Promise<T>): Promise<T> {
  await mkdir(cache.dir, { recursive: true });
  const lock = await acquireLock(join(cache.dir, 'lock'), { timeoutMs: lockWaitMs });
  try {
    return await work();
  } finally {
    await lock.release();
  }
}

async function writeHold(cache: DebianCache, hold: Hold): Promise<void> {
  await mkdir(cache.users, { recursive: true });
  await writeVersionedJson(holdPath(cache, hold.instance), holdFile, hold, 0o644);
}

/** Every hold on file, by its path. */
async function readHolds(cache: DebianCache): Promise<Map<string, Hold>> {
  const holds = new Map<string, Hold>();
  for (const name of await readdir(cache.users).catch(() => [] as string[])) {
    if (!name.endsWith('.json')) continue;
    const hold = await readVersionedJsonOrUndefined(join(cache.users, name), holdFile);
    if (hold !== undefined) holds.set(join(cache.users, name), hold);
  }
  return holds;
}

/** An instance whose state dir no longer has its settings was removed; one we cannot look at is kept. */
async function instanceGone(instance: string): Promise<boolean> {
  return stat(join(instance, 'config.json')).then(() => false, (error: unknown) => errnoCode(error) === 'ENOENT');
}

const whole = async (cache: DebianCache, key: string): Promise<boolean> => (await readManifest(join(cache.trees, key))) !== undefined;

/** The instance holds key as well as what it held: a fetch of key is under way. */
export async function holdTreeToo(cache: DebianCache, instance: string, key: string): Promise<void> {
  await underLock(cache, async () => {
    const held = (await readVersionedJsonOrUndefined(holdPath(cache, instance), holdFile))?.trees ?? [];
    await writeHold(cache, { format: 1, instance, trees: [...new Set([...held, key])] });
  });
}

/**
 * The instance holds key alone, if the tree is whole (false: it was removed meanwhile); the
 * trees it held before, and those of removed instances, are removed once nobody holds them. One
 * that a process still runs stays held by this instance, to be tried again at its next start; a
 * removal that fails is logged and tried again then too.
 */
export async function holdTree(cache: DebianCache, instance: string, key: string, log: (line: string) => void): Promise<boolean> {
  let removed: readonly string[] = [];
  const held = await underLock(cache, async () => {
    if (!(await whole(cache, key))) return false;
    const holds = await readHolds(cache);
    const own = holdPath(cache, instance);
    const letGo = new Set(holds.get(own)?.trees.filter((tree) => tree !== key) ?? []);
    holds.set(own, { format: 1, instance, trees: [key] });
    for (const [path, hold] of holds) {
      if (path === own || !(await instanceGone(hold.instance))) continue;
      await rm(path, { force: true });
      holds.delete(path);
      for (const tree of hold.trees) letGo.add(tree);
    }
    const outcome = await removeUnheld(cache, letGo, holds, log).catch((error: unknown) => {
      log(`could not remove unused Debian trees: ${(error as Error).message}`);
      return { removed: [], stillUsed: [...letGo] };
    });
    removed = outcome.removed;
    await writeHold(cache, { format: 1, instance, trees: [key, ...outcome.stillUsed] });
    return true;
  });
  // renamed away under the lock: nothing uses them; deleting them needs no lock
  for (const dir of removed) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  return held;
}

interface Removal {
  /** Where the removed trees were moved, to be deleted. */
  readonly removed: readonly string[];
  /** Candidates no instance holds that a process still runs (or processes could not be listed). */
  readonly stillUsed: readonly string[];
}

/** Moves the candidates nobody holds or runs out of the way, with their request records and the packages only they used. */
async function removeUnheld(cache: DebianCache, candidates: ReadonlySet<string>, holds: ReadonlyMap<string, Hold>, log: (line: string) => void): Promise<Removal> {
  const held = new Set([...holds.values()].flatMap((hold) => hold.trees));
  const unheld = [...candidates].filter((key) => !held.has(key));
  if (unheld.length === 0) return { removed: [], stillUsed: [] };
  const processes = await listProcesses().catch(() => undefined);
  const removed: { key: string; dir: string; packages: readonly string[] }[] = [];
  const stillUsed: string[] = [];
  for (const key of unheld) {
    const dir = join(cache.trees, key);
    const manifest = await readManifest(dir);
    if (manifest === undefined) continue;
    const users = processes?.filter((p) => p.commandLine.includes(key)).map((p) => p.pid);
    if (users === undefined || users.length > 0) {
      log(`keeping the Debian tree ${key}: ${users === undefined ? 'processes cannot be listed' : `process ${users.join(', ')} uses it`}`);
      stillUsed.push(key);
      continue;
    }
    const away = join(cache.trees, tempName(key, 'prune'));
    await rename(dir, away);
    removed.push({ key, dir: away, packages: manifest.packages.map((p) => p.sha256) });
    log(`removing the Debian tree ${key}: no instance uses it any more`);
  }
  if (removed.length > 0) await removeLeftovers(cache, removed, held);
  return { removed: removed.map((tree) => tree.dir), stillUsed };
}

/** The request records of removed trees, and the packages no remaining tree lists. */
async function removeLeftovers(cache: DebianCache, removed: readonly { key: string; packages: readonly string[] }[], held: ReadonlySet<string>): Promise<void> {
  const gone = new Set(removed.map((tree) => tree.key));
  for (const name of await readdir(cache.requests).catch(() => [] as string[])) {
    const record = await readRequest(join(cache.requests, name));
    if (record !== undefined && gone.has(record.tree)) await rm(join(cache.requests, name), { force: true });
  }
  // a fetch under way (a held tree not yet whole) may need any cached package
  const fetching = await Promise.all([...held].map(async (key) => !(await whole(cache, key))));
  if (fetching.includes(true)) return;
  const kept = new Set<string>();
  for (const name of await readdir(cache.trees)) {
    if (treeKeyPattern.test(name)) for (const p of (await readManifest(join(cache.trees, name)))?.packages ?? []) kept.add(p.sha256);
  }
  for (const sha256 of new Set(removed.flatMap((tree) => tree.packages))) {
    if (!kept.has(sha256)) await rm(join(cache.debs, `${sha256}.deb`), { force: true });
  }
}
