/**
 * A small QMP client: connect to QEMU's unix socket, read the greeting, negotiate
 * capabilities, then run commands matched to their replies by id. Events are ignored.
 */
import { createConnection, type Socket } from 'node:net';

interface Pending {
  readonly command: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

export class QmpError extends Error {
  override readonly name = 'QmpError';
}

export class QmpClient {
  private readonly pending = new Map<string, Pending>();
  private nextId = 1;
  private buffered = '';
  private greeted: (() => void) | undefined;
  private closedError: Error | undefined;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.receive(chunk));
    socket.on('error', (error) => this.fail(new QmpError(`QMP socket: ${error.message}`)));
    socket.on('close', () => this.fail(new QmpError('QMP socket closed')));
  }

  /** Connects, waits for the greeting and leaves negotiation mode; rejects after timeoutMs. */
  static async connect(socketPath: string, timeoutMs = 2000): Promise<QmpClient> {
    const client = new QmpClient(createConnection(socketPath));
    const timer = setTimeout(() => client.fail(new QmpError(`QMP: no greeting on ${socketPath} within ${timeoutMs} ms`)), timeoutMs);
    try {
      await new Promise<void>((resolve, reject) => {
        client.greeted = resolve;
        client.socket.once('error', reject);
        client.socket.once('close', () => reject(client.closedError ?? new QmpError('QMP socket closed')));
      });
      await client.execute('qmp_capabilities', undefined, timeoutMs);
      return client;
    } catch (error) {
      client.close();
      throw error instanceof Error && !(error instanceof QmpError) ? new QmpError(`QMP ${socketPath}: ${error.message}`) : error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Runs one command and resolves with its "return" value; rejects on an "error" reply or timeout. */
  execute(command: string, args?: Record<string, unknown>, timeoutMs = 5000): Promise<unknown> {
    if (this.closedError !== undefined) return Promise.reject(this.closedError);
    const id = `lb-${this.nextId++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpError(`QMP ${command}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve, reject, timer });
      this.socket.write(`${JSON.stringify({ execute: command, ...(args === undefined ? {} : { arguments: args }), id })}\n`);
    });
  }

  close(): void {
    this.fail(new QmpError('QMP client closed'));
    this.socket.destroy();
  }

  private receive(chunk: string): void {
    this.buffered += chunk;
    let newline: number;
    while ((newline = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, newline).trim();
      this.buffered = this.buffered.slice(newline + 1);
      if (line !== '') this.handle(line);
    }
  }

  private handle(line: string): void {
    let message: { QMP?: unknown; id?: unknown; return?: unknown; error?: { class?: string; desc?: string } };
    try {
      message = JSON.parse(line) as typeof message;
    } catch {
      return;
    }
    if (message.QMP !== undefined) {
      this.greeted?.();
      this.greeted = undefined;
      return;
    }
    if (typeof message.id !== 'string') return; // an event, or a reply that is not ours
    const pending = this.pending.get(message.id);
    if (pending === undefined) return;
    this.pending.delete(message.id);
    clearTimeout(pending.timer);
    if (message.error !== undefined) {
      pending.reject(new QmpError(`QMP ${pending.command}: ${message.error.desc ?? message.error.class ?? 'error'}`));
    } else {
      pending.resolve(message.return);
    }
  }

  private fail(error: Error): void {
    this.closedError ??= error;
    for (const [id, pending] of this.pending) {
      this.pending.delete(id);
      clearTimeout(pending.timer);
      pending.reject(error);
    }
    if (this.greeted !== undefined) this.socket.destroy(error);
  }
}
