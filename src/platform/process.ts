/** Processes of this host: whether one lives, its command line, all of them. */
import { execFile } from 'node:child_process';
import { open, readdir, readFile } from 'node:fs/promises';
import { errnoCode } from '../errors.js';

/** True while pid names a live process (a zombie counts as gone). */
export async function isAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if (errnoCode(error) !== 'EPERM') return false;
  }
  if (process.platform !== 'linux') return true;
  const stat = await readProcText(`/proc/${pid}/stat`, Buffer.allocUnsafe(statBuffer));
  if (stat === undefined) return false;
  // The state letter follows the command name, which is in parentheses and may contain spaces.
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

/** The command line of pid, arguments joined by spaces; undefined when it cannot be read. */
export async function processCommandLine(pid: number): Promise<string | undefined> {
  if (process.platform === 'linux') return await readCommandLine(pid, Buffer.allocUnsafe(commandLineBuffer));
  return new Promise((resolve) => {
    execFile('ps', ['-o', 'command=', '-p', String(pid)], { timeout: 5000 }, (error, stdout) => {
      const line = stdout.trim();
      resolve(error === null && line !== '' ? line : undefined);
    });
  });
}

/** Bytes read of /proc/<pid>/stat (a few hundred). */
const statBuffer = 1024;
/** Bytes read of a command line at once; a longer one is read again whole. */
const commandLineBuffer = 16 * 1024;
/** /proc/<pid>/cmdline files read at once by listProcesses. */
const listingReaders = 4;

/**
 * A /proc file through a buffer the caller may reuse; undefined when it cannot be read. readFile
 * gives each of these files (size 0 to stat) a 64 KiB buffer of its own: a listing of every
 * process allocated megabytes at once, held until the next collection, and the agent, which lists
 * processes at each start and stop and polls /proc/<pid>/stat while it waits, kept them in its
 * resident memory.
 */
async function readProcText(path: string, buffer: Buffer): Promise<string | undefined> {
  const file = await open(path, 'r').catch(() => undefined);
  if (file === undefined) return undefined;
  try {
    let length = 0;
    for (;;) {
      const { bytesRead } = await file.read(buffer, length, buffer.length - length, null);
      length += bytesRead;
      if (bytesRead === 0 || length === buffer.length) break;
    }
    // longer than the buffer (rare): read whole
    return length < buffer.length ? buffer.toString('utf8', 0, length) : await readFile(path, 'utf8');
  } catch {
    return undefined;
  } finally {
    await file.close().catch(() => undefined);
  }
}

async function readCommandLine(pid: number, buffer: Buffer): Promise<string | undefined> {
  const raw = await readProcText(`/proc/${pid}/cmdline`, buffer);
  return raw === undefined || raw === '' ? undefined : raw.replace(/\0$/, '').split('\0').join(' ');
}

/** Every live process with its command line; throws when processes cannot be listed. */
export async function listProcesses(): Promise<{ pid: number; commandLine: string }[]> {
  if (process.platform === 'linux') {
    const pids = (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry)).map(Number);
    const found: { pid: number; commandLine: string }[] = [];
    let next = 0;
    // a few readers, each through one buffer, instead of every file at once
    const reader = async (): Promise<void> => {
      const buffer = Buffer.allocUnsafe(commandLineBuffer);
      for (let pid = pids[next++]; pid !== undefined; pid = pids[next++]) {
        const commandLine = await readCommandLine(pid, buffer);
        if (commandLine !== undefined) found.push({ pid, commandLine });
      }
    };
    await Promise.all(Array.from({ length: listingReaders }, reader));
    return found.sort((a, b) => a.pid - b.pid);
  }
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile('ps', ['-axo', 'pid=,command='], { timeout: 10_000, maxBuffer: 64 << 20 }, (error, out) => (error ? reject(error) : resolve(out)));
  });
  return stdout.split('\n').flatMap((line) => {
    const match = /^\s*(\d+)\s+(.*)$/.exec(line);
    return match ? [{ pid: Number(match[1]), commandLine: match[2] ?? '' }] : [];
  });
}

