/**
 * vfkit's REST API on its unix socket: `GET /vm/state` and `POST /vm/state {"state": …}`.
 * vfkit removes the socket when it exits; a socket nobody accepts on (refused, or gone) means the
 * VM is stopped, as Podman reads it.
 */
import { request } from 'node:http';
import { errnoCode, failed } from '../../errors.js';

/** What vfkit reports: VirtualMachineStateRunning, …Stopped, …Stopping, …Starting, …Paused, …Error and the like. */
export interface VmStateReply {
  readonly state: string;
  readonly canStop?: boolean;
  readonly canHardStop?: boolean;
}

/** answered: vfkit said; gone: nothing accepts on the socket (vfkit exited); unknown: it did not answer sensibly. */
export type VmState =
  | { readonly kind: 'answered'; readonly reply: VmStateReply }
  | { readonly kind: 'gone' }
  | { readonly kind: 'unknown'; readonly why: string };

export type StateChange = 'Stop' | 'HardStop';

/** No server behind the socket: vfkit has exited (or never started). */
function unreachable(error: unknown): boolean {
  const code = errnoCode(error);
  return code === 'ECONNREFUSED' || code === 'ENOENT' || code === 'ECONNRESET' || code === 'EPIPE';
}

interface Reply {
  readonly status: number;
  readonly body: string;
}

function call(socketPath: string, method: 'GET' | 'POST', body: string | undefined, timeoutMs: number): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        method,
        path: '/vm/state',
        headers: body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error(`vfkit's REST API did not answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(body);
  });
}

/** The VM's state; never throws. */
export async function vmState(socketPath: string, timeoutMs = 2000): Promise<VmState> {
  let reply: Reply;
  try {
    reply = await call(socketPath, 'GET', undefined, timeoutMs);
  } catch (error) {
    return unreachable(error) ? { kind: 'gone' } : { kind: 'unknown', why: (error as Error).message };
  }
  if (reply.status !== 200) return { kind: 'unknown', why: `GET /vm/state answered ${reply.status}: ${reply.body.trim()}` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(reply.body);
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || typeof (parsed as { state?: unknown }).state !== 'string') {
    return { kind: 'unknown', why: `GET /vm/state answered without a state: ${reply.body.trim()}` };
  }
  return { kind: 'answered', reply: parsed as VmStateReply };
}

export const stoppedState = 'VirtualMachineStateStopped';

/** True when vfkit says the VM stopped, or nothing serves its API any more. */
export async function isStopped(socketPath: string, timeoutMs = 2000): Promise<boolean> {
  const state = await vmState(socketPath, timeoutMs);
  return state.kind === 'gone' || (state.kind === 'answered' && state.reply.state === stoppedState);
}

/**
 * Asks for Stop (the guest's power button) or HardStop (pulled plug). Resolves false when vfkit
 * was already gone; throws when it answered with an error.
 */
export async function requestStateChange(socketPath: string, change: StateChange, timeoutMs = 5000): Promise<boolean> {
  let reply: Reply;
  try {
    reply = await call(socketPath, 'POST', JSON.stringify({ state: change }), timeoutMs);
  } catch (error) {
    if (unreachable(error)) return false;
    throw failed(`could not ask vfkit for ${change}: ${(error as Error).message}`, undefined, error);
  }
  // vfkit answers 202 Accepted (its documentation says 200)
  if (reply.status >= 200 && reply.status < 300) return true;
  throw failed(`vfkit refused ${change}: ${reply.status} ${reply.body.trim()}`);
}
