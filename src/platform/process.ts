/** Processes of this host: whether one lives, its command line, all of them. */
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { errnoCode } from '../errors.js';

/** True while pid names a live process (a zombie counts as gone). */
export async function isAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if (errnoCode(error) !== 'EPERM') return false;
  }
  if (process.platform !== 'linux') return true;
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return false;
  // The state letter follows the command name, which is in parentheses and may contain spaces.
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

/** The command line of pid, arguments joined by spaces; undefined when it cannot be read. */
export async function processCommandLine(pid: number): Promise<string | undefined> {
  if (process.platform === 'linux') {
    const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined);
    if (raw === undefined || raw === '') return undefined;
    return raw.replace(/\0$/, '').split('\0').join(' ');
  }
  return new Promise((resolve) => {
    execFile('ps', ['-o', 'command=', '-p', String(pid)], { timeout: 5000 }, (error, stdout) => {
      const line = stdout.trim();
      resolve(error === null && line !== '' ? line : undefined);
    });
  });
}

/** Every live process with its command line; throws when processes cannot be listed. */
export async function listProcesses(): Promise<{ pid: number; commandLine: string }[]> {
  if (process.platform === 'linux') {
    const pids = (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry)).map(Number);
    const found = await Promise.all(pids.map(async (pid) => ({ pid, commandLine: await processCommandLine(pid) })));
    return found.flatMap(({ pid, commandLine }) => (commandLine === undefined ? [] : [{ pid, commandLine }]));
  }
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile('ps', ['-axo', 'pid=,command='], { timeout: 10_000, maxBuffer: 64 << 20 }, (error, out) => (error ? reject(error) : resolve(out)));
  });
  return stdout.split('\n').flatMap((line) => {
    const match = /^\s*(\d+)\s+(.*)$/.exec(line);
    return match ? [{ pid: Number(match[1]), commandLine: match[2] ?? '' }] : [];
  });
}

