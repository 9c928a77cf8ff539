/**
 * One holder at a time (a starter of an instance, the Debian cache's bookkeeping): an exclusive
 * lock file holding the owner's pid. A lock whose owner is gone is stale and taken over, so a
 * crash never blocks the next start.
 */
import { randomBytes } from 'node:crypto';
import { link, readFile, rm, writeFile } from 'node:fs/promises';
import { errnoCode, failed } from '../errors.js';
import { isAlive } from '../platform/process.js';
import { writingTo } from './files.js';

export interface Lock {
  release(): Promise<void>;
}


/** The live pid holding the lock, if any. */
export async function lockHolder(path: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt(await readFile(path, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 && (await isAlive(pid)) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Writes the pid to a temp file, then hard-links it into place: the lock never exists empty. */
async function tryAcquire(path: string): Promise<Lock | undefined> {
  // unique per attempt: two waiters in one process must not remove each other's temp file
  const temp = `${path}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writingTo(temp, () => writeFile(temp, `${process.pid}\n`, { mode: 0o600 }));
    await link(temp, path);
    return { release: () => rm(path, { force: true }) };
  } catch (error) {
    if (errnoCode(error) !== 'EEXIST') throw error;
    return undefined;
  } finally {
    await rm(temp, { force: true });
  }
}

export async function acquireLock(
  path: string,
  options: { timeoutMs: number; onWait?: (holder: number) => void; pollMs?: number },
): Promise<Lock> {
  const deadline = Date.now() + options.timeoutMs;
  let told = false;
  for (;;) {
    const lock = await tryAcquire(path);
    if (lock) return lock;
    const holder = await lockHolder(path);
    if (holder === undefined) {
      // Stale: its owner died. Remove it only if it still names a dead owner (another waiter may have won).
      const again = await readFile(path, 'utf8').catch(() => undefined);
      const pid = again === undefined ? NaN : Number.parseInt(again, 10);
      if (again !== undefined && !(Number.isInteger(pid) && (await isAlive(pid)))) await rm(path, { force: true });
      continue;
    }
    if (!told) {
      options.onWait?.(holder);
      told = true;
    }
    if (Date.now() > deadline) {
      throw failed(`another linux-builder process (pid ${holder}) holds ${path}`, 'wait for it to finish, or stop it');
    }
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 150));
  }
}
