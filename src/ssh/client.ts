/**
 * In-process SSH (ssh2) for the readiness probe and short commands: the host key must equal
 * the pinned one, or nothing is sent.
 */
import { ssh2 } from './ssh2.js';
import { connectEndpoint, describeEndpoint, type SshEndpoint } from './endpoint.js';

export interface SshTarget {
  readonly endpoint: SshEndpoint;
  readonly user: string;
  readonly privateKey: string;
  /** Base64 blob of the pinned host public key. */
  readonly hostKeyBlob: string;
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

/** Connects, runs one command, disconnects. Rejects on connection or key errors. */
export function sshExec(target: SshTarget, command: string, timeoutMs: number): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const client = new (ssh2().Client)();
    const pinned = Buffer.from(target.hostKeyBlob, 'base64');
    let mismatch = false;
    let settled = false;
    const finish = (error: Error | undefined, result?: ExecResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.end();
      if (error) reject(mismatch ? new HostKeyMismatch(target) : error);
      else if (result) resolve(result);
    };
    const timer = setTimeout(() => finish(new Error(`ssh timed out after ${timeoutMs} ms`)), timeoutMs);
    client
      .on('ready', () => {
        client.exec(command, (error, stream) => {
          if (error) return finish(error);
          let stdout = '';
          let stderr = '';
          let code: number | null = null;
          stream.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
          stream.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
          stream.on('exit', (exitCode: number | null) => (code = exitCode));
          stream.on('close', () => finish(undefined, { code, stdout, stderr }));
        });
      })
      .on('error', (error) => finish(error))
      .on('close', () => finish(new Error('ssh connection closed before the command finished')))
      .connect({
        sock: connectEndpoint(target.endpoint),
        username: target.user,
        privateKey: target.privateKey,
        readyTimeout: timeoutMs,
        hostVerifier: (key: Buffer) => {
          mismatch = !key.equals(pinned);
          return !mismatch;
        },
      });
  });
}
