/**
 * Runs the real CLI in a child process against a private state and runtime dir, with the
 * shared download cache (so the kernel is fetched once per machine, not per test).
 */
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const cliPath = join(root, 'bin', 'linux-builder.js');

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface Sandbox {
  readonly env: NodeJS.ProcessEnv;
  readonly stateHome: string;
  readonly runtimeDir: string;
  run(args: string[], options?: { timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<RunResult>;
}

export function sandbox(): Sandbox {
  const stateHome = mkdtempSync(join(tmpdir(), 'lb-state-'));
  // Short: the QMP socket path must stay under 104 bytes.
  const runtimeDir = mkdtempSync('/tmp/lbr-');
  const env = { ...process.env, XDG_STATE_HOME: stateHome, XDG_RUNTIME_DIR: runtimeDir };
  return {
    env,
    stateHome,
    runtimeDir,
    run: (args, options = {}) => runCli(args, options.env ?? env, options.timeoutMs ?? 300_000),
  };
}

/** Another user to run the CLI as (the test runs as root): its ids, and a directory it may enter. */
export interface RunAs {
  readonly uid: number;
  readonly gid: number;
  readonly cwd: string;
}

export function runCli(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number, as?: RunAs): Promise<RunResult> {
  return runProcess(process.execPath, [cliPath, ...args], env, timeoutMs, as);
}

/**
 * Why another user cannot run this checkout's CLI (it sits under /root or a private home), as a
 * skip reason; undefined when the user can.
 */
export async function checkoutUnreadableBy(as: RunAs, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const help = await runCli(['--help'], env, 60_000, as);
  if (help.code === 0) return undefined;
  const lines = help.stderr.split('\n');
  const reason = lines.find((line) => /EACCES|permission denied/i.test(line)) ?? lines.find((line) => line.trim() !== '') ?? `exit ${help.code}`;
  return `this checkout cannot be run by another user (uid ${as.uid}: ${reason.trim()}); clone it where every user can read it`;
}

/** Any command, its output collected, killed after timeoutMs; as another user when given. */
export function runProcess(command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number, as?: RunAs): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'], ...as });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Pids of live processes whose command line contains needle (e.g. an instance's QMP socket). */
export function processesMatching(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes(needle) && !cmdline.includes('--test')) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** Pids of live processes (other than this one) with an open file or their working directory under dir. */
export function processesUsing(dir: string): number[] {
  const pids: number[] = [];
  const under = (target: string): boolean => target === dir || target.startsWith(`${dir}/`);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const fds = readdirSync(`/proc/${entry}/fd`).map((fd) => `/proc/${entry}/fd/${fd}`);
      if ([`/proc/${entry}/cwd`, ...fds].some((link) => under(readlinkOrEmpty(link)))) pids.push(Number(entry));
    } catch {
      // exited meanwhile, or not ours to look at
    }
  }
  return pids;
}

function readlinkOrEmpty(link: string): string {
  try {
    return readlinkSync(link);
  } catch {
    return '';
  }
}

/** Live child processes of pid, with their command lines. */
export function childProcesses(pid: number): { pid: number; commandLine: string }[] {
  const children: { pid: number; commandLine: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command name (in parentheses, may hold spaces): state, then ppid.
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(ppid) !== pid || state === 'Z') continue;
      children.push({ pid: Number(entry), commandLine: readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim() });
    } catch {
      // exited meanwhile
    }
  }
  return children;
}

export function nixStoreAdd(path: string): string {
  return execFileSync('nix-store', ['--add', path], { encoding: 'utf8' }).trim();
}
