/**
 * The readiness ladder: the VM process is alive → its SSH port accepts → sshd sends its banner
 * → a command runs over SSH with the pinned host key. All under one deadline; a failure names
 * the highest rung that never succeeded.
 */
import { HostKeyMismatch, sshExec, type SshTarget } from './client.js';
import { connectEndpoint, type SshEndpoint } from './endpoint.js';

export type Rung = 'process' | 'port' | 'ssh-banner' | 'ssh-exec';

/** The ladder, bottom to top. */
const rungOrder: readonly Rung[] = ['process', 'port', 'ssh-banner', 'ssh-exec'];

/** What each rung expects, as a user would check it. */
export const rungDescriptions: Record<Rung, string> = {
  process: 'the VM process stays alive',
  port: "the guest's SSH endpoint (forwarded port or socket) accepts connections",
  'ssh-banner': 'sshd in the guest answers with its banner',
  'ssh-exec': 'a command runs over SSH with the pinned host key',
};

export class NotReady extends Error {
  constructor(
    readonly rung: Rung,
    detail: string,
  ) {
    super(detail);
    this.name = 'NotReady';
  }
}

export interface ReadinessOptions {
  readonly target: SshTarget;
  /** Absolute time (ms since epoch) after which the ladder gives up. */
  readonly deadline: number;
  /** Rejects or resolves when the VM process exits: the ladder then fails at rung "process". */
  readonly exited: Promise<unknown>;
  readonly command?: string;
  readonly onRung?: (rung: Rung) => void;
  /** The guest's own report that it gave up (e.g. a failure line on its console), if any. */
  readonly guestFailure?: () => Promise<string | undefined>;
  /**
   * The guest's own report that its setup is done (e.g. the ready line on its console). When
   * given, no command runs before it: sshd may listen before the store overlay is mounted.
   */
  readonly guestReady?: () => Promise<boolean>;
  readonly now?: () => number;
  readonly pollMs?: number;
}

type Probe = 'refused' | 'no-banner' | 'banner';

/** One attempt: does the endpoint accept, and does an SSH banner come back within timeoutMs? */
function probeBanner(endpoint: SshEndpoint, timeoutMs: number): Promise<Probe> {
  return new Promise((resolve) => {
    const socket = connectEndpoint(endpoint);
    let received = '';
    let accepted = false;
    const done = (result: Probe): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done(accepted ? 'no-banner' : 'refused'), timeoutMs);
    socket.on('connect', () => (accepted = true));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (received.startsWith('SSH-') && received.includes('\n')) done('banner');
      else if (received.length > 255) done('no-banner');
    });
    socket.on('error', () => done(accepted ? 'no-banner' : 'refused'));
    socket.on('close', () => done(accepted ? 'no-banner' : 'refused'));
  });
}

export async function waitUntilReady(options: ReadinessOptions): Promise<void> {
  const now = options.now ?? Date.now;
  const pollMs = options.pollMs ?? 50;
  const { target } = options;
  let exitedWith: string | undefined;
  options.exited.then(
    (info) => (exitedWith = `the VM process exited before the guest was ready (${describeExit(info)})`),
    (error: unknown) => (exitedWith = `the VM process failed: ${String(error)}`),
  );
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  let reached = 'process' as Rung;
  // Only up: a later probe that finds less (a forwarder that accepts before sshd answers) is not news.
  const climb = (rung: Rung): void => {
    if (rungOrder.indexOf(rung) > rungOrder.indexOf(reached)) {
      reached = rung;
      options.onRung?.(rung);
    }
  };
  options.onRung?.('process');
  let lastError = '';
  let guestSaidReady = options.guestReady === undefined;
  while (now() < options.deadline) {
    if (exitedWith) throw new NotReady('process', exitedWith);
    const left = options.deadline - now();
    guestSaidReady ||= (await options.guestReady?.()) ?? true;
    // A forwarder (slirp, a vsock relay) accepts at once and keeps a connection silent until the
    // guest listens: short probes until the guest says it is ready, so the banner is seen within
    // one poll of sshd listening.
    // sshd answered already and the guest now says it is ready: straight to the command.
    const probe = reached === 'ssh-banner' && guestSaidReady ? 'banner' : await probeBanner(target.endpoint, Math.min(guestSaidReady ? 2000 : 300, Math.max(100, left)));
    if (exitedWith) throw new NotReady('process', exitedWith);
    if (probe !== 'banner') {
      const failure = await options.guestFailure?.();
      if (failure !== undefined) throw new NotReady(probe === 'refused' ? 'port' : 'ssh-banner', `the guest reported: ${failure}`);
    }
    if (probe === 'refused') {
      await sleep(pollMs);
      continue;
    }
    climb('port');
    if (probe === 'no-banner') {
      await sleep(pollMs);
      continue;
    }
    climb('ssh-banner');
    if (!guestSaidReady) {
      await sleep(pollMs);
      continue;
    }
    try {
      const result = await sshExec(target, options.command ?? 'true', Math.max(1000, Math.min(30_000, options.deadline - now())));
      if (result.code === 0) {
        climb('ssh-exec');
        return;
      }
      lastError = `readiness command exited ${result.code}: ${result.stderr.trim().slice(0, 200)}`;
    } catch (error) {
      if (error instanceof HostKeyMismatch) throw new NotReady('ssh-exec', error.message);
      lastError = (error as Error).message;
    }
    await sleep(pollMs);
  }
  const next = rungOrder[Math.min(rungOrder.indexOf(reached) + 1, rungOrder.length - 1)] ?? 'ssh-exec';
  throw new NotReady(next, `not within the deadline${lastError ? ` (${lastError})` : ''}`);
}

function describeExit(info: unknown): string {
  if (typeof info !== 'object' || info === null) return String(info);
  const { code, signal } = info as { code?: unknown; signal?: unknown };
  return signal ? `killed by ${String(signal)}` : `exit code ${String(code)}`;
}
