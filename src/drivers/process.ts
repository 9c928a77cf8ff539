/**
 * Process helpers every driver shares: spawn a hypervisor detached from us, recognise it
 * later by its command line, wait for it to exit, kill it.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, chmod, open } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ExitInfo, RunningVm } from './driver.js';
import { errnoCode, failed } from '../errors.js';
import { isAlive } from '../platform/process.js';

export { isAlive, listProcesses, processCommandLine } from '../platform/process.js';

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

/** The full path of an executable found on PATH, or undefined. */
export async function findOnPath(name: string, path: string = process.env.PATH ?? ''): Promise<string | undefined> {
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}
