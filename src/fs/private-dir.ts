/**
 * Directories only this user can change. A directory of ours in a shared place (/tmp above
 * all) is trusted only when it is a real directory — not a symbolic link — owned by this user
 * and not writable by group or others, as tmux and OpenSSH check theirs. Another user who made
 * /tmp/linux-builder-<uid> first could otherwise swap the sockets and pid file we keep there.
 */
import { constants, type Stats } from 'node:fs';
import { chmod, lstat, mkdir, open, readFile, readlink, stat, type FileHandle } from 'node:fs/promises';
import { dirname, relative, sep } from 'node:path';
import { errnoCode, failed, UserError } from '../errors.js';
import { isOutOfSpace, outOfSpace, placeOf } from './files.js';
import { roots } from './roots.js';

/**
 * Creates dir (and parents) and makes it 0700, never through a symbolic link. In the runtime
 * dir, and in a state or cache dir whose parent others can write to, dir and each directory
 * between it and its linux-builder root must be a private directory of this user, or the
 * command stops naming it. What lies above that root is the user's or the system's.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  const top = topOf(dir);
  try {
    await mkdir(dirname(top), { recursive: true, mode: 0o700 });
    if (await mustBePrivate(dir, top)) {
      for (const each of [top, ...descendants(top, dir)]) await ensureOnePrivateDir(each);
    } else {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      // A link the user made in their own directory is theirs to point anywhere; its target keeps its mode.
      if ((await lstat(dir)).isDirectory()) await chmod(dir, 0o700);
    }
  } catch (error) {
    if (error instanceof UserError) throw error;
    if (isOutOfSpace(error)) throw await outOfSpace(error, { path: dir });
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

/**
 * Without creating anything: throws the error ensurePrivateDir would for what already exists
 * of dir (doctor asks this).
 */
export async function checkPrivateDir(dir: string): Promise<void> {
  const top = topOf(dir);
  if (!(await mustBePrivate(dir, top).catch(() => false))) return;
  for (const each of [top, ...descendants(top, dir)]) {
    const stats = await lstat(each).catch(() => undefined);
    if (stats === undefined) return;
    if (!isPrivate(stats)) throw await notPrivate(each);
  }
}

/** The linux-builder root dir is in, or dir itself outside them: what is below it is ours to check. */
function topOf(dir: string): string {
  const place = placeOf(dir);
  return place.variable !== undefined && isInside(place.dir, dir) ? place.dir : dir;
}

/** The runtime dir always; a state or cache dir when its root's parent is a shared place. */
async function mustBePrivate(dir: string, top: string): Promise<boolean> {
  return placeOf(dir).dir === roots().runtime || (await othersCanWrite(dirname(top)));
}

/** A shared place: writable by group or others (/tmp), or owned by another user than this one or root. */
async function othersCanWrite(dir: string): Promise<boolean> {
  const stats = await stat(dir);
  return (stats.mode & 0o022) !== 0 || (stats.uid !== process.getuid?.() && stats.uid !== 0);
}

function isInside(parent: string, path: string): boolean {
  const rest = relative(parent, path);
  return rest === '' || (rest !== '..' && !rest.startsWith(`..${sep}`) && !rest.startsWith(sep));
}

/** The directories below top down to dir, in order: /a, /a/b/c → /a/b, /a/b/c. */
function descendants(top: string, dir: string): string[] {
  const parts = relative(top, dir).split(sep).filter((part) => part !== '');
  return parts.map((_, i) => [top, ...parts.slice(0, i + 1)].join(sep));
}

/** mkdir 0700, or check what is there; opened without following a link, and chmod-ed through that handle. */
async function ensureOnePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { mode: 0o700 }).catch((error: unknown) => {
    if (errnoCode(error) !== 'EEXIST') throw error;
  });
  // lstat first: another user's 0700 directory cannot even be opened.
  const seen = await lstat(dir);
  if (!isPrivate(seen)) throw await notPrivate(dir);
  let handle: FileHandle;
  try {
    handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ELOOP' || code === 'ENOTDIR') throw await notPrivate(dir);
    throw error;
  }
  try {
    const stats = await handle.stat();
    // The same directory as looked at, not one swapped in since.
    if (stats.ino !== seen.ino || stats.dev !== seen.dev || !isPrivate(stats)) throw await notPrivate(dir);
    if ((stats.mode & 0o777) !== 0o700) await handle.chmod(0o700);
  } finally {
    await handle.close();
  }
}

/** A directory of this user that neither its group nor others can write to. */
function isPrivate(stats: Stats): boolean {
  return stats.isDirectory() && stats.uid === process.getuid?.() && (stats.mode & 0o022) === 0;
}

/** One line naming the directory, what it is, its owner and mode; the hint says what to do. */
async function notPrivate(dir: string): Promise<UserError> {
  const stats = await lstat(dir);
  const owner = await ownerName(stats.uid);
  const mode = `mode ${(stats.mode & 0o7777).toString(8).padStart(4, '0')}`;
  let what: string;
  if (stats.isSymbolicLink()) {
    const target = await readlink(dir).catch(() => '?');
    what = `it is a symbolic link to ${target}, owned by ${owner}`;
  } else if (!stats.isDirectory()) {
    what = `it is not a directory (owned by ${owner}, ${mode})`;
  } else if (stats.uid !== process.getuid?.()) {
    what = `it belongs to ${owner}, ${mode}`;
  } else {
    what = `it is writable by ${stats.mode & 0o002 ? 'others' : 'its group'} (owned by ${owner}, ${mode})`;
  }
  const variable = placeOf(dir).variable;
  return failed(
    `refusing to use ${dir}: ${what}; another user could replace what linux-builder keeps there`,
    `remove it (as its owner or root)${variable ? `, or set ${variable} to a directory of your own` : ''}`,
  );
}

/** "nobody (uid 65534)", or "uid 65534" when /etc/passwd does not name it. */
async function ownerName(uid: number): Promise<string> {
  const passwd = await readFile('/etc/passwd', 'utf8').catch(() => '');
  const name = passwd
    .split('\n')
    .map((line) => line.split(':'))
    .find((fields) => fields[2] === String(uid))?.[0];
  return name ? `${name} (uid ${uid})` : `uid ${uid}`;
}
