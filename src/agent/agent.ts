/**
 * The on-demand agent: a loopback TCP listener that relays each connection to the guest's
 * sshd, booting the VM first when it is not running (every connection that arrives during a
 * boot waits on that one boot), and stopping it when no connection has been open for the idle
 * timeout. The VM itself is owned by a session, a child process that lives as long as the VM
 * does (vm-session.ts): the agent stays small between boots. Boots and stops run one at a
 * time; the VM is never stopped while a connection is open.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { isAlive } from '../drivers/process.js';
import { status } from '../instance/status.js';
import { silentReporter, type Phase, type Reporter } from '../instance/reporter.js';
import type { InstancePaths } from '../instance/paths.js';
import { agentStateWriter } from './agent-state.js';
import type { EventSink } from './events.js';
import type { SessionMessage, SessionRequest } from './vm-session.js';
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
}

interface Vm {
  readonly pid: number;
  /** The guest's sshd, where connections are relayed to. */
  readonly ssh: SshEndpoint;
}

/** The CLI, which runs a session as `vm-session` (from dist/ or, in a checkout, the source). */
const cliPath = fileURLToPath(new URL('../../bin/linux-builder.js', import.meta.url));

/** The agent's handle on its session child. */
class Session {
  /** Set once the session is ready, cleared when the agent asks it to stop or it ends. */
  vm: Vm | undefined;
  readonly ready: Promise<Vm>;
  /** Resolves when the child has exited. */
  readonly ended: Promise<void>;
  private readonly child: ChildProcess;
  private nextSync = 1;
  private readonly syncs = new Map<number, () => void>();

  constructor(name: string, reason: string, events: EventSink, reporter: Reporter) {
    // Its own process group: a Ctrl-C at the agent's terminal reaches the agent, which stops the
    // VM through the session, and not the session itself.
    this.child = spawn(process.execPath, [cliPath, '--name', name, 'vm-session', '--reason', reason, '--since', String(Date.now())], { detached: true, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    let settle: { resolve: (vm: Vm) => void; reject: (error: Error) => void } | undefined;
    this.ready = new Promise<Vm>((resolve, reject) => (settle = { resolve, reject }));
    // A boot that fails is said by each connection that waited for it.
    this.ready.catch(() => undefined);
    this.child.on('message', (message: SessionMessage) => {
      switch (message.type) {
        case 'ready':
          this.vm = { pid: message.pid, ssh: message.ssh };
          settle?.resolve(this.vm);
          break;
        case 'failed':
          settle?.reject(new Error(message.message));
          break;
        case 'synced':
          this.settleSync(message.id);
          break;
        case 'event':
          if (message.event.event === 'vm-exited') this.vm = undefined;
          events.emit(message.event);
          break;
        case 'report':
          if (message.kind === 'phase') reporter.phase(message.line as Phase);
          else reporter[message.kind]?.(message.line);
      }
    });
    this.ended = new Promise<void>((resolve) => {
      this.child.once('exit', (code, signal) => {
        // Ready, not asked to stop, no exit of its VM said: the next connection adopts the VM.
        if (this.vm) events.emit({ event: 'error', message: `the VM session (pid ${this.child.pid}) ended on its own (${signal ?? `exit ${code}`}); its VM is adopted by the next connection` });
        this.vm = undefined;
        settle?.reject(new Error(`the VM session ended before the VM was ready (${signal ?? `exit ${code}`})`));
        for (const id of [...this.syncs.keys()]) this.settleSync(id);
        resolve();
      });
      this.child.once('error', (error) => {
        settle?.reject(new Error(`cannot start the VM session: ${error.message}`));
        resolve();
      });
    });
  }

  /** Resolves once a registration run that began after this call has finished (or the session ended). */
  sync(): Promise<void> {
    const id = this.nextSync++;
    return new Promise<void>((resolve) => {
      this.syncs.set(id, resolve);
      if (!this.request({ type: 'sync', id })) this.settleSync(id);
    });
  }

  /** Asks the session to stop its VM, and waits until it has exited. */
  stop(requestedBy: string, label: string): Promise<void> {
    this.vm = undefined;
    this.request({ type: 'stop', requestedBy, label });
    return this.ended;
  }

  private request(request: SessionRequest): boolean {
    if (!this.child.connected) return false;
    this.child.send(request);
    return true;
  }

  private settleSync(id: number): void {
    this.syncs.get(id)?.();
    this.syncs.delete(id);
  }
}

export class Agent {
  private server: Server | undefined;
  private readonly connections = new Map<number, Socket>();
  private nextId = 1;
  /** The session child of the VM that runs, boots or stops; undefined once it has exited. */
  private session: Session | undefined;
  private booting: Promise<Vm> | undefined;
  /** Boots and stops, one at a time. */
  private operations: Promise<unknown> = Promise.resolve();
  private idleTimer: NodeJS.Timeout | undefined;
  private idleSince: Date | null = new Date();
  private readonly state;
  private closing = false;

  constructor(private readonly options: AgentOptions) {
    this.state = agentStateWriter(options.paths.agentState);
  }

  get listenAddress(): string {
    return describeEndpoint(this.options.listen);
  }

  /** Adopts a VM already running for this instance, then listens. */
  async listen(): Promise<void> {
    const current = await status(this.options.paths.name);
    if (current.state === 'running') {
      await this.ensureVm('adopted at the agent\'s start').catch((error: unknown) => {
        this.options.events.emit({ event: 'error', message: `adopting the running VM: ${(error as Error).message}` });
      });
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
      void this.session?.sync();
    });
    this.ensureVm(`connection ${id}`)
      .then(async (vm) => {
        await this.session?.sync();
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
    // Its session notices the exit within a second, records it and ends; a new one boots.
    const known = this.session;
    if (known?.vm && !(await isAlive(known.vm.pid))) {
      known.vm = undefined;
      await known.ended;
    }
    if (this.session?.vm) return this.session.vm;
    this.booting ??= this.serialize(async () => {
      if (this.session?.vm) return this.session.vm;
      // A session stopping its VM, or recording its exit, ends before the next boot.
      await this.session?.ended;
      const session = new Session(this.options.paths.name, reason, this.options.events, this.options.reporter ?? silentReporter);
      this.session = session;
      void session.ended.then(() => {
        if (this.session === session) this.session = undefined;
      });
      return await session.ready;
    }).finally(() => {
      this.booting = undefined;
    });
    return this.booting;
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
    const session = this.session;
    if (this.connections.size > 0 || !session?.vm || this.closing) return;
    const idleSeconds = this.idleSince ? (Date.now() - this.idleSince.getTime()) / 1000 : 0;
    this.options.events.emit({ event: 'idle-stop', idleSeconds });
    const requestedBy = `the agent after ${Math.round(idleSeconds)} s without a connection`;
    await this.serialize(() => session.stop(requestedBy, 'idle stop'));
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
    // A session that died (killed on its own) left its VM running: a new one adopts it to stop it.
    if (!this.session?.vm && (await status(this.options.paths.name)).state === 'running') await this.ensureVm(`stop on ${signal}`).catch(() => undefined);
    const session = this.session;
    if (session?.vm) await this.serialize(() => session.stop(`the agent on ${signal}`, `stop on ${signal}`));
    else await session?.ended;
    await this.state.flush();
    await rm(this.options.paths.agentState, { force: true });
    await this.options.events.close();
  }
}
