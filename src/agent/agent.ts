/**
 * The on-demand agent: a loopback TCP listener that relays each connection to the guest's
 * sshd, booting the VM first when it is not running (every connection that arrives during a
 * boot waits on that one boot), and stopping it when no connection has been open for the idle
 * timeout. Boots and stops run one at a time; the VM is never stopped while a connection is open.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { rm } from 'node:fs/promises';
import { isAlive } from '../drivers/process.js';
import { status } from '../instance/status.js';
import { consoleTail } from '../instance/console.js';
import { settleExitedVm } from '../instance/leftovers.js';
import { storeSyncFor } from '../instance/ssh-access.js';
import { silentReporter, type Reporter } from '../instance/reporter.js';
import type { ExitInfo } from '../drivers/driver.js';
import { describeExit } from '../instance/last-exit.js';
import type { StoreSync, SyncResult } from '../nix/store-sync.js';
import type { InstancePaths } from '../instance/paths.js';
import { agentStateWriter } from './agent-state.js';
import type { EventSink } from './events.js';
import { connectEndpoint, describeEndpoint, type SshEndpoint, type TcpEndpoint } from '../ssh/endpoint.js';

export interface AgentOptions {
  readonly paths: InstancePaths;
  /** Where Nix's ssh connects: a loopback port. */
  readonly listen: TcpEndpoint;
  readonly idleTimeoutMs: number;
  /** How long open connections may finish after SIGTERM before they are cut. */
  readonly shutdownGraceMs: number;
  readonly events: EventSink;
  readonly reporter?: Reporter;
  /** How often the agent checks that its VM is still alive. */
  readonly watchMs?: number;
}

/** How long an idle stop waits for a host store registration under way. */
const syncDrainMs = 30_000;

interface Vm {
  readonly pid: number;
  /** The guest's sshd, where connections are relayed to. */
  readonly ssh: SshEndpoint;
}

export class Agent {
  private server: Server | undefined;
  private readonly connections = new Map<number, Socket>();
  private nextId = 1;
  private vm: Vm | undefined;
  private booting: Promise<Vm> | undefined;
  /** Boots and stops, one at a time. */
  private operations: Promise<unknown> = Promise.resolve();
  private idleTimer: NodeJS.Timeout | undefined;
  private idleSince: Date | null = new Date();
  private watchTimer: NodeJS.Timeout | undefined;
  private readonly state;
  private closing = false;
  private readonly storeSync: StoreSync;
  private syncTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: AgentOptions) {
    this.state = agentStateWriter(options.paths.agentState);
    // One event per registration run, however many connections waited for it.
    const onRegistered = (result: SyncResult) => options.events.emit({ event: 'store-sync', registered: result.registered, seconds: result.seconds, inGuest: result.inGuest });
    this.storeSync = storeSyncFor(options.paths, onRegistered, true);
  }

  get listenAddress(): string {
    return describeEndpoint(this.options.listen);
  }

  /** Adopts a VM already running for this instance, then listens. */
  async listen(): Promise<void> {
    const current = await status(this.options.paths.name);
    if (current.state === 'running' && current.pid !== null && current.ssh) {
      this.adopt({ pid: current.pid, ssh: current.ssh });
      this.options.events.emit({ event: 'vm-adopted', pid: current.pid });
    }
    // No Nagle on either side of the relay: the SSH handshake is a ping-pong of small packets,
    // and each one held back for an ACK costs a warm build tens of milliseconds.
    this.server = createServer({ noDelay: true }, (socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen(this.options.listen.port, this.options.listen.host, () => resolve());
    });
    this.options.events.emit({ event: 'listening', listen: this.listenAddress, idleTimeoutSeconds: this.options.idleTimeoutMs / 1000 });
    this.armIdle();
    this.publish();
  }

  private publish(): void {
    this.state.update({
      version: 1,
      pid: process.pid,
      listen: this.listenAddress,
      connections: this.connections.size,
      idleSince: this.idleSince ? this.idleSince.toISOString() : null,
    });
  }

  private accept(client: Socket): void {
    const id = this.nextId++;
    const opened = Date.now();
    this.connections.set(id, client);
    this.disarmIdle();
    this.options.events.emit({ event: 'connection-open', id, connections: this.connections.size });
    this.publish();
    client.on('error', () => client.destroy());
    client.once('close', () => {
      this.connections.delete(id);
      this.options.events.emit({
        event: 'connection-close',
        id,
        connections: this.connections.size,
        seconds: (Date.now() - opened) / 1000,
        // What crossed the relay: to the guest (bytesIn) and back (bytesOut).
        bytesIn: client.bytesRead,
        bytesOut: client.bytesWritten,
      });
      if (this.connections.size === 0) this.armIdle();
      this.publish();
      // The build's output was copied back to the host during the connection: registered now,
      // the next build (often right behind it) finds nothing left to register.
      void this.syncStore();
    });
    this.ensureVm(`connection ${id}`)
      .then(async (vm) => {
        await this.syncStore();
        this.relay(client, vm);
      })
      .catch((error: unknown) => {
        this.options.events.emit({ event: 'error', message: `connection ${id}: ${(error as Error).message}` });
        client.destroy();
      });
  }

  private relay(client: Socket, vm: Vm): void {
    if (client.destroyed) return;
    const upstream = connectEndpoint(vm.ssh);
    upstream.setNoDelay(true);
    upstream.on('error', () => client.destroy());
    upstream.once('close', () => client.destroy());
    client.once('close', () => upstream.destroy());
    upstream.once('connect', () => {
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  private serialize<T>(operation: () => Promise<T>): Promise<T> {
    const next = this.operations.then(operation, operation);
    this.operations = next.catch(() => undefined);
    return next;
  }

  /** The running VM; boots it when there is none. Concurrent callers share one boot. */
  private async ensureVm(reason: string): Promise<Vm> {
    // Checked per connection: a VM killed a moment ago must not get connections relayed to it.
    const known = this.vm;
    if (known && !(await isAlive(known.pid))) await this.noticeExit(known);
    if (this.vm) return this.vm;
    this.booting ??= this.serialize(async () => {
      if (this.vm) return this.vm;
      const current = await status(this.options.paths.name);
      if (current.state === 'running' && current.pid !== null && current.ssh) {
        const vm = { pid: current.pid, ssh: current.ssh };
        this.adopt(vm);
        return vm;
      }
      this.options.events.emit({ event: 'boot-start', reason });
      const t0 = Date.now();
      // Loaded at the first boot: an agent that never boots a VM stays small.
      const { start } = await import('../instance/start.js');
      const result = await start(this.options.paths.name, {}, this.options.reporter ?? silentReporter, { storeSync: this.storeSync });
      const { pid, ssh } = result.status;
      if (pid === null || !ssh) throw new Error(`the builder is ${result.status.state} after start`);
      this.options.events.emit({ event: 'boot-ready', seconds: (Date.now() - t0) / 1000, pid });
      const vm = { pid, ssh };
      this.adopt(vm);
      // We launched it, so we hear how it ends (killed by which signal) at once.
      void result.exited?.then((info) => this.noticeExit(vm, info));
      return vm;
    }).finally(() => {
      this.booting = undefined;
    });
    return this.booting;
  }

  private adopt(vm: Vm): void {
    this.vm = vm;
    clearInterval(this.watchTimer);
    this.watchTimer = setInterval(() => void this.watch(vm), this.options.watchMs ?? 1000);
    // Outputs copied back from the guest, and anything else the host gains, are registered
    // between builds, so the next build rarely waits for a sync.
    clearInterval(this.syncTimer);
    this.syncTimer = setInterval(() => void this.syncStore(), 10_000);
  }

  /** Registers host paths the guest's Nix does not know yet, before a build can need them. */
  private async syncStore(): Promise<void> {
    if (!this.vm || process.env.LINUX_BUILDER_SKIP_STORE_SYNC === '1') return;
    try {
      if ((await this.storeSync.pending()).length === 0) return;
      await this.storeSync.sync();
    } catch (error) {
      this.options.events.emit({ event: 'error', message: `store sync: ${(error as Error).message}` });
    }
  }

  /** Notices a VM that died under us (killed, crashed, powered off from inside). */
  private async watch(vm: Vm): Promise<void> {
    if (this.vm === vm && !(await isAlive(vm.pid))) await this.noticeExit(vm);
  }

  /** info: how it ended, when this agent launched it; else only that it is gone. */
  private async noticeExit(vm: Vm, info?: ExitInfo): Promise<void> {
    if (this.vm !== vm) return;
    this.vm = undefined;
    clearInterval(this.watchTimer);
    clearInterval(this.syncTimer);
    this.storeSync.forget();
    const at = new Date().toISOString();
    const how = info ? describeExit(info) : 'the VM process was gone (killed, crashed, or powered off inside)';
    const last = (await consoleTail(this.options.paths.consoleLog, 1))[0];
    // Queued with boots: the record and the removal of its run files come before the next boot,
    // and under the instance lock, so they never touch a VM started meanwhile.
    await this.serialize(() => settleExitedVm(this.options.paths.name, { pid: vm.pid, at, reason: how }))
      .then((recorded) => {
        const reason = recorded.requested ? recorded.reason : `exited without a stop: ${how}${last ? `; console: ${last}` : ''}`;
        this.options.events.emit({ event: 'vm-exited', pid: vm.pid, reason });
      })
      .catch((error: unknown) => {
        this.options.events.emit({ event: 'vm-exited', pid: vm.pid, reason: `exited without a stop: ${how}` });
        this.options.events.emit({ event: 'error', message: `after the VM exited: ${(error as Error).message}` });
      });
  }

  private armIdle(): void {
    this.disarmIdle();
    this.idleSince = new Date();
    if (this.closing) return;
    this.idleTimer = setTimeout(() => void this.idleStop(), this.options.idleTimeoutMs);
  }

  private disarmIdle(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.idleSince = null;
  }

  private async idleStop(): Promise<void> {
    if (this.connections.size > 0 || !this.vm || this.closing) return;
    const idleSeconds = this.idleSince ? (Date.now() - this.idleSince.getTime()) / 1000 : 0;
    this.vm = undefined;
    clearInterval(this.watchTimer);
    clearInterval(this.syncTimer);
    this.storeSync.forget();
    this.options.events.emit({ event: 'idle-stop', idleSeconds });
    const requestedBy = `the agent after ${Math.round(idleSeconds)} s without a connection`;
    await this.serialize(() => this.stopVm(requestedBy)).catch((error: unknown) => {
      this.options.events.emit({ event: 'error', message: `idle stop: ${(error as Error).message}` });
    });
  }

  /** Call with this.vm already cleared, so no new registration starts. */
  private async stopVm(requestedBy: string): Promise<void> {
    // A registration under way finishes first: powered off under it, it would fail, and the
    // guest's database would be cut mid-write.
    await Promise.race([this.storeSync.settled(), new Promise((resolve) => setTimeout(resolve, syncDrainMs).unref())]);
    this.storeSync.close();
    const { stop } = await import('../instance/stop.js');
    await stop(this.options.paths.name, { force: false, requestedBy });
  }

  /** Stops accepting, lets open connections finish up to the grace period, stops the VM. */
  async shutdown(signal: string): Promise<void> {
    this.closing = true;
    this.disarmIdle();
    this.options.events.emit({ event: 'shutdown', signal, connections: this.connections.size });
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    const deadline = Date.now() + this.options.shutdownGraceMs;
    while (this.connections.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    for (const socket of this.connections.values()) socket.destroy();
    await this.booting?.catch(() => undefined);
    clearInterval(this.watchTimer);
    clearInterval(this.syncTimer);
    if (this.vm) {
      this.vm = undefined;
      await this.serialize(() => this.stopVm(`the agent on ${signal}`)).catch((error: unknown) => {
        this.options.events.emit({ event: 'error', message: `stop on ${signal}: ${(error as Error).message}` });
      });
    }
    await this.state.flush();
    await rm(this.options.paths.agentState, { force: true });
    await this.options.events.close();
  }
}
