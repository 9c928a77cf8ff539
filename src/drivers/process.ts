/**
 * Process helpers every driver shares: spawn a hypervisor detached from us, recognise it
 * later by its command line, wait for it to exit, kill it.
 */
import { execFile, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { access, chmod, open, readdir, readFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ExitInfo, RunningVm } from './driver.js';
import { errnoCode, failed } from '../errors.js';

/**
 * Starts argv in its own process group with stdout and stderr in logFile (0600, truncated),
 * and lets this process exit without waiting for it. Resolves once the process exists.
 * The returned `exited` never keeps this process alive: await it only alongside something
 * that does (a timer, a socket), or Node may end first with the promise still pending.
 */
export async function spawnDetached(argv: readonly string[], logFile: string): Promise<RunningVm> {
  const [command, ...args] = argv;
  if (command === undefined) throw new Error('spawnDetached: empty argv');
  const log = await open(logFile, 'w', 0o600);
  try {
    await chmod(logFile, 0o600);
    const child = spawn(command, args, { detached: true, stdio: ['ignore', log.fd, log.fd] });
    const exited = new Promise<ExitInfo>((resolve) => {
      child.on('exit', (code, signal) => resolve({ code, signal }));
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (error) => reject(failed(`could not start ${command}: ${error.message}`, undefined, error)));
    });
    child.unref();
    const pid = child.pid;
    if (pid === undefined) throw failed(`could not start ${command}: no process id`);
    return { pid, exited, processLog: logFile };
  } finally {
    await log.close();
  }
}

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

/** Polls until pid is gone; true if it went within timeoutMs. */
export async function waitForExit(pid: number, timeoutMs: number, pollMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!(await isAlive(pid))) return true;
    if (Date.now() >= deadline) return false;
    await sleep(Math.min(pollMs, Math.max(1, deadline - Date.now())));
  }
}

/** SIGKILL; a process that is already gone is fine. */
export function killHard(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch (error) {
    if (errnoCode(error) !== 'ESRCH') throw error;
  }
}

function pathCandidates(name: string, path: string): string[] {
  return path.split(delimiter).filter((dir) => dir !== '').map((dir) => join(dir, name));
}

/** The full path of an executable found on PATH, or undefined. */
export async function findOnPath(name: string, path: string = process.env.PATH ?? ''): Promise<string | undefined> {
  for (const candidate of pathCandidates(name, path)) {
    if (await access(candidate, constants.X_OK).then(() => true, () => false)) return candidate;
  }
  return undefined;
}

/** findOnPath, for a decision that cannot wait (which driver an instance has). */
export function findOnPathSync(name: string, path: string = process.env.PATH ?? ''): string | undefined {
  return pathCandidates(name, path).find((candidate) => {
    try {
      accessSync(candidate, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
