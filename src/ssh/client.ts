/**
 * Short commands in the guest (the readiness probe's last rung, stop's poweroff) through the
 * system's OpenSSH client and the instance's own ssh_config: the pinned host key
 * (StrictHostKeyChecking against its known_hosts, checked before the client authenticates), the
 * instance's key, and the route to the guest (a forwarded port, or vsock through a
 * ProxyCommand). Nix reaches the builder with the same client and file, so a probe that passes
 * is a connection Nix can make; and the agent, which probes at every boot, carries no SSH
 * implementation of its own in memory.
 */
import { spawn } from 'node:child_process';
import { describeEndpoint, type SshEndpoint } from './endpoint.js';

export interface SshTarget {
  /** Where sshd listens: what the banner probe connects to. */
  readonly endpoint: SshEndpoint;
  /** The instance's ssh_config, and the Host alias in it. */
  readonly configFile: string;
  readonly alias: string;
}

export class HostKeyMismatch extends Error {
  constructor(target: SshTarget) {
    super(`host key mismatch on ${describeEndpoint(target.endpoint)}: the server's key is not the instance's pinned key`);
    this.name = 'HostKeyMismatch';
  }
}

export interface ExecResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** What OpenSSH says when the server's key is not the one in known_hosts (StrictHostKeyChecking yes). */
const hostKeyRefused = /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/;

/**
 * ssh's own failure (exit 255, nothing ran): the connection refused or cut, the key refused.
 * A command in the guest that exits 255 itself reads the same; the commands run here never do.
 */
const sshFailed = 255;

/** The argv of one command in the guest: no shared connection, no prompt, ssh's own timeout. */
export function sshExecArgv(target: SshTarget, command: string, timeoutMs: number): string[] {
  return [
    '-F', target.configFile,
    // A probe must not start, or wait on, the shared connection the config sets up for builds.
    '-o', 'ControlMaster=no', '-o', 'ControlPath=none',
    '-o', 'BatchMode=yes',
    '-o', `ConnectTimeout=${Math.max(1, Math.ceil(timeoutMs / 1000))}`,
    target.alias, command,
  ];
}

/** Connects, runs one command, disconnects. Rejects when ssh itself fails, or on a host key it refused. */
export function sshExec(target: SshTarget, command: string, timeoutMs: number): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('ssh', sshExecArgv(target, command, timeoutMs), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`ssh could not be run: ${error.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (timedOut) return reject(new Error(`ssh timed out after ${timeoutMs} ms`));
      if (code === sshFailed) {
        if (hostKeyRefused.test(stderr)) return reject(new HostKeyMismatch(target));
        const said = stderr.trim().split('\n').pop() ?? '';
        return reject(new Error(`ssh failed${said ? `: ${said}` : ''}`));
      }
      resolve({ code, stdout, stderr });
    });
  });
}
