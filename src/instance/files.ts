/** File primitives for state: private directories, atomic writes. */
import { chmod, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { errnoCode, failed } from '../errors.js';

/** Creates dir (and parents) and makes the leaf 0700. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
  } catch (error) {
    const code = errnoCode(error);
    throw failed(
      `cannot create ${dir}${code ? ` (${code})` : ''}`,
      code === 'EACCES' || code === 'EROFS' || code === 'EPERM'
        ? 'make the directory writable, or point XDG_STATE_HOME / XDG_RUNTIME_DIR somewhere writable'
        : undefined,
      error,
    );
  }
}

/** Writes to a temp file in the same directory, fsyncs, then renames: readers never see half a file. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
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
}

export async function readTextIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined;
    throw error;
  }
}

export async function ensureParentDir(path: string): Promise<void> {
  await ensurePrivateDir(dirname(path));
}
