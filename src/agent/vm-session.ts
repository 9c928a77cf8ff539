/**
 * A VM session: the agent's child process that owns one VM from its boot (or adoption) to its
 * stop or exit. It boots, keeps the guest's Nix database in step with the host store between
 * builds, notices the VM's exit, and stops it when the agent asks; then it exits. The agent
 * itself only listens and relays, so what a boot allocates (the image, the registration of
 * thousands of store paths) leaves with this process instead of staying in the agent's heap.
 */
import { failed } from '../errors.js';
import { isAlive } from '../drivers/process.js';
import { status } from '../instance/status.js';
import { consoleTail } from '../instance/console.js';
import { settleExitedVm } from '../instance/leftovers.js';
import { storeSyncFor } from '../instance/ssh-access.js';
import { instancePaths, type InstancePaths } from '../instance/paths.js';
import { describeExit } from '../instance/last-exit.js';
import type { Phase, Reporter } from '../instance/reporter.js';
import type { ExitInfo } from '../drivers/driver.js';
import type { SshEndpoint } from '../ssh/endpoint.js';
import type { StoreSync } from '../nix/store-sync.js';
import type { AgentEvent } from './events.js';

/** What the agent asks its session. */
export type SessionRequest =
  | { readonly type: 'sync'; readonly id: number }
  /** label names the stop in an error event ("idle stop", "stop on SIGTERM"). */
  | { readonly type: 'stop'; readonly requestedBy: string; readonly label: string };

/** What a session tells the agent. */
export type SessionMessage =
  | { readonly type: 'ready'; readonly pid: number; readonly ssh: SshEndpoint }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'synced'; readonly id: number }
  | { readonly type: 'event'; readonly event: AgentEvent }
  | { readonly type: 'report'; readonly kind: 'phase' | 'info' | 'detail' | 'progress'; readonly line: string };

/** How a session reaches the agent; process.send in the child. */
export type SessionChannel = (message: SessionMessage) => Promise<void>;

/** How long a stop waits for a host store registration under way. */
const syncDrainMs = 30_000;

interface Vm {
  readonly pid: number;
  readonly ssh: SshEndpoint;
}

export interface VmSessionOptions {
  /** How often the session checks that its VM is still alive. */
  readonly watchMs?: number;
}

export class VmSession {
  private vm: Vm | undefined;
  private watchTimer: NodeJS.Timeout | undefined;
  private syncTimer: NodeJS.Timeout | undefined;
  private readonly storeSync: StoreSync;
  /** The stop and the record of an exit, one at a time. */
  private operations: Promise<unknown> = Promise.resolve();
  private finishing: Promise<void> | undefined;
  /** Set once the session is over: a boot that completes after it arms nothing. */
  private over = false;
  private resolveFinished!: () => void;
  /** Resolves once the session has nothing left to do: its VM stopped or exited, or the agent left. */
  readonly finished = new Promise<void>((resolve) => (this.resolveFinished = resolve));

  constructor(
    private readonly paths: InstancePaths,
    private readonly send: SessionChannel,
    private readonly options: VmSessionOptions = {},
  ) {
    // One event per registration run, however many builds waited for it.
    this.storeSync = storeSyncFor(paths, (result) => this.emit({ event: 'store-sync', registered: result.registered, seconds: result.seconds, inGuest: result.inGuest }), true);
  }

  private emit(event: AgentEvent): void {
    void this.send({ type: 'event', event });
  }

  /** The agent's reporter, over the channel. */
  private reporter(): Reporter {
    const report = (kind: 'phase' | 'info' | 'detail' | 'progress') => (line: string) => void this.send({ type: 'report', kind, line });
    return { phase: (phase: Phase) => report('phase')(phase), info: report('info'), detail: report('detail'), progress: report('progress') };
  }

  /**
   * Adopts the instance's running VM, or boots one; tells the agent ready or failed. since: when
   * the agent decided to boot, so boot-ready counts this process's own start-up too.
   */
  async begin(reason: string, since = Date.now()): Promise<void> {
    try {
      // Loaded while status reads its files: a boot, the usual case, needs it next.
      const loading = import('../instance/start.js');
      loading.catch(() => undefined);
      const current = await status(this.paths.name);
      if (current.state === 'running' && current.pid !== null && current.ssh) {
        this.emit({ event: 'vm-adopted', pid: current.pid });
        await this.ready({ pid: current.pid, ssh: current.ssh });
        return;
      }
      this.emit({ event: 'boot-start', reason });
      const { start } = await loading;
      const result = await start(this.paths.name, {}, this.reporter(), { storeSync: this.storeSync });
      const { pid, ssh } = result.status;
      if (pid === null || !ssh) throw new Error(`the builder is ${result.status.state} after start`);
      this.emit({ event: 'boot-ready', seconds: (Date.now() - since) / 1000, pid });
      const vm = { pid, ssh };
      // We launched it, so we hear how it ends (killed by which signal) at once.
      void result.exited?.then((info) => this.noticeExit(vm, info));
      await this.ready(vm);
    } catch (error) {
      await this.send({ type: 'failed', message: (error as Error).message });
      await this.finish();
    }
  }

  private async ready(vm: Vm): Promise<void> {
    if (this.over) return;
    this.vm = vm;
    this.watchTimer = setInterval(() => void this.watch(vm), this.options.watchMs ?? 1000);
    // Outputs copied back from the guest, and anything else the host gains, are registered
    // between builds, so the next build rarely waits for a sync.
    this.syncTimer = setInterval(() => void this.syncStore(), 10_000);
    await this.send({ type: 'ready', pid: vm.pid, ssh: vm.ssh });
  }

  async handle(request: SessionRequest): Promise<void> {
    if (request.type === 'sync') {
      await this.syncStore();
      await this.send({ type: 'synced', id: request.id });
      return;
    }
    const vm = this.vm;
    this.vm = undefined;
    this.stopTimers();
    if (vm) {
      await this.serialize(() => this.stopVm(request.requestedBy)).catch((error: unknown) => {
        this.emit({ event: 'error', message: `${request.label}: ${(error as Error).message}` });
      });
    }
    await this.finish();
  }

  /** The agent went away (killed): the VM keeps running for the next agent to adopt. */
  abandon(): void {
    this.vm = undefined;
    void this.finish();
  }

  private serialize<T>(operation: () => Promise<T>): Promise<T> {
    const next = this.operations.then(operation, operation);
    this.operations = next.catch(() => undefined);
    return next;
  }

  private stopTimers(): void {
    clearInterval(this.watchTimer);
    clearInterval(this.syncTimer);
  }

  /** Registers host paths the guest's Nix does not know yet, before a build can need them. */
  private async syncStore(): Promise<void> {
    if (!this.vm || process.env.LINUX_BUILDER_SKIP_STORE_SYNC === '1') return;
    try {
      if ((await this.storeSync.pending()).length === 0) return;
      await this.storeSync.sync();
    } catch (error) {
      this.emit({ event: 'error', message: `store sync: ${(error as Error).message}` });
    }
  }

  /** Notices a VM that died under us (killed, crashed, powered off from inside). */
  private async watch(vm: Vm): Promise<void> {
    if (this.vm === vm && !(await isAlive(vm.pid))) await this.noticeExit(vm);
  }

  /** info: how it ended, when this session launched it; else only that it is gone. */
  private async noticeExit(vm: Vm, info?: ExitInfo): Promise<void> {
    if (this.vm !== vm) return;
    this.vm = undefined;
    this.stopTimers();
    const at = new Date().toISOString();
    const how = info ? describeExit(info) : 'the VM process was gone (killed, crashed, or powered off inside)';
    const last = (await consoleTail(this.paths.consoleLog, 1))[0];
    // Under the instance lock, so the record and the removal of its run files never touch a VM
    // started meanwhile.
    await this.serialize(() => settleExitedVm(this.paths.name, { pid: vm.pid, at, reason: how }))
      .then((recorded) => {
        const reason = recorded.requested ? recorded.reason : `exited without a stop: ${how}${last ? `; console: ${last}` : ''}`;
        this.emit({ event: 'vm-exited', pid: vm.pid, reason });
      })
      .catch((error: unknown) => {
        this.emit({ event: 'vm-exited', pid: vm.pid, reason: `exited without a stop: ${how}` });
        this.emit({ event: 'error', message: `after the VM exited: ${(error as Error).message}` });
      });
    await this.finish();
  }

  private async stopVm(requestedBy: string): Promise<void> {
    // A registration under way finishes first: powered off under it, it would fail, and the
    // guest's database would be cut mid-write.
    await Promise.race([this.storeSync.settled(), new Promise((resolve) => setTimeout(resolve, syncDrainMs).unref())]);
    this.storeSync.close();
    const { stop } = await import('../instance/stop.js');
    await stop(this.paths.name, { force: false, requestedBy });
  }

  /** Once: timers and the guest shell go, the operations under way end, then finished resolves. */
  private finish(): Promise<void> {
    this.finishing ??= (async () => {
      this.over = true;
      this.stopTimers();
      this.storeSync.close();
      await this.operations;
      this.resolveFinished();
    })();
    return this.finishing;
  }
}

/**
 * The child's side: talks to the agent over the IPC channel it was started with, and returns once
 * the session is over (the caller then exits).
 */
export async function runVmSession(name: string, reason: string, since: number): Promise<void> {
  if (!process.send) throw failed('vm-session runs only as the on-demand agent\'s child: it talks to the agent over an IPC channel', 'run `linux-builder serve`, which starts it at each boot');
  const send: SessionChannel = (message) =>
    new Promise((resolve) => {
      if (!process.connected) return resolve();
      process.send?.(message, undefined, {}, () => resolve());
    });
  const session = new VmSession(instancePaths(name), send);
  const onMessage = (request: SessionRequest): void => void session.handle(request);
  process.on('message', onMessage);
  process.once('disconnect', () => session.abandon());
  await session.begin(reason, Number.isFinite(since) ? since : Date.now());
  await session.finished;
  process.off('message', onMessage);
  if (process.connected) process.disconnect();
}
