/** File primitives for state and cache: atomic writes, a full disk explained (private directories: private-dir.ts). */
import { open, readFile, rename, rm, statfs, type FileHandle } from 'node:fs/promises';
import { dirname, relative } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { errnoCode, UserError } from '../errors.js';
import { roots } from './roots.js';

/** Writes to a temp file in the same directory, fsyncs, then renames: readers never see half a file. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  await writingTo(path, async () => {
    const temp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
    const handle = await open(temp, 'wx', mode);
    try {
      await handle.chmod(mode); // exactly mode, whatever the umask
      await handle.writeFile(data);
      await handle.sync();
    } catch (error) {
      await handle.close();
      await rm(temp, { force: true });
      throw error;
    }
    await handle.close();
    try {
      await rename(temp, path);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
  }, { neededBytes: Buffer.byteLength(data) });
}

/** A file's sha256, read in 64 KiB chunks: a kernel hashed at every boot is never held whole. */
export async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/** Up to length bytes of an open file from position (fewer at its end). */
export async function readAt(file: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await file.read(buffer, 0, length, position);
  return buffer.subarray(0, bytesRead);
}

export async function readTextIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined;
    throw error;
  }
}

// ---- a full disk -----------------------------------------------------------------------

/** What tools print when a write fails for space (tar, dpkg-deb, apt's own check before a download). */
const noSpaceText = /No space left on device|You don't have enough free space/;
const noQuotaText = /Disk quota exceeded/;

/** Out of space or of quota, from a system call or in a failed tool's output, also as the cause of another error. */
function shortage(error: unknown, depth = 0): 'space' | 'quota' | undefined {
  if (typeof error !== 'object' || error === null || depth > 4) return undefined;
  const code = errnoCode(error);
  if (code === 'ENOSPC') return 'space';
  if (code === 'EDQUOT') return 'quota';
  const fields = error as { message?: unknown; stderr?: unknown; cause?: unknown };
  const text = [fields.message, fields.stderr].filter((t) => typeof t === 'string').join('\n');
  if (noQuotaText.test(text)) return 'quota';
  if (noSpaceText.test(text)) return 'space';
  return shortage(fields.cause, depth + 1);
}

export function isOutOfSpace(error: unknown): boolean {
  return shortage(error) !== undefined;
}

export interface Write {
  /** The file or directory being written. */
  readonly path: string;
  /** What is being done, when the path alone does not say it ("downloading linux-image-…"). */
  readonly what?: string;
  /** The bytes the write needs, when known. */
  readonly neededBytes?: number;
}

/** Runs a write; running out of space becomes the one error that says where and how much. */
export async function writingTo<T>(path: string, write: () => Promise<T>, details: Omit<Write, 'path'> = {}): Promise<T> {
  try {
    return await write();
  } catch (error) {
    // An inner write already said where; its place is the more exact one.
    if (error instanceof OutOfSpace || !isOutOfSpace(error)) throw error;
    throw await outOfSpace(error, { path, ...details });
  }
}

export interface Place {
  readonly dir: string;
  readonly label: string;
  readonly variable?: string;
  readonly room?: string;
}

/** The linux-builder directory a path is in: the user knows these by name and by variable. */
export function placeOf(path: string): Place {
  const r = roots();
  const places: Place[] = [
    { dir: r.cache, label: 'the cache directory', variable: 'XDG_CACHE_HOME', room: 'a kernel and a guest image take about 100 MiB, a downloaded kernel package about 500 MiB more' },
    { dir: r.state, label: 'the state directory', variable: 'XDG_STATE_HOME', room: 'the instance disk there grows as the guest writes, up to --disk-size' },
    { dir: r.runtime, label: 'the runtime directory', variable: 'XDG_RUNTIME_DIR' },
  ];
  const inside = (dir: string): boolean => {
    const rest = relative(dir, path);
    return rest !== '..' && !rest.startsWith('../');
  };
  return places.find((p) => inside(p.dir)) ?? { dir: dirname(path), label: 'the directory' };
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** Free and total bytes of the file system holding path (or its nearest existing parent). */
async function space(path: string): Promise<{ free: number; total: number } | undefined> {
  for (let dir = path; ; dir = dirname(dir)) {
    const fs = await statfs(dir).catch(() => undefined);
    if (fs) return { free: fs.bavail * fs.bsize, total: fs.blocks * fs.bsize };
    if (dir === dirname(dir)) return undefined;
  }
}

/** A write ran out of space or quota: one line naming the directory, and the free space. */
export class OutOfSpace extends UserError {}

/** The user error for a write that ran out of space (ENOSPC) or quota (EDQUOT). */
export async function outOfSpace(error: unknown, write: Write): Promise<OutOfSpace> {
  const place = placeOf(write.path);
  const quota = shortage(error) === 'quota';
  const file = relative(place.dir, write.path) || '.';
  const fs = await space(write.path);
  const amounts = [
    write.neededBytes === undefined ? undefined : `needs ${mib(write.neededBytes)}`,
    quota ? 'disk quota exceeded' : fs === undefined ? undefined : `${mib(fs.free)} free of ${mib(fs.total)}`,
  ].filter((part) => part !== undefined);
  const message = `${place.label} ${place.dir} is out of space: ${write.what ?? `writing ${file}`}${amounts.length > 0 ? ` (${amounts.join(', ')})` : ''}`;
  const where = place.variable ? `, or point ${place.variable} at a file system with more room` : '';
  const hint = `${quota ? 'free space within your quota there' : 'free space there'}${where}${place.room ? ` (${place.room})` : ''}`;
  return new OutOfSpace(message, { hint, exitCode: 1, cause: error });
}
