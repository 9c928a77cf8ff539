/** The agent's JSON-lines event log: one object per line, with time and event name first. */
import { createWriteStream, type WriteStream } from 'node:fs';

export type AgentEvent =
  | { event: 'listening'; listen: string; idleTimeoutSeconds: number }
  | { event: 'connection-open'; id: number; connections: number }
  | { event: 'connection-close'; id: number; connections: number; seconds: number; bytesIn: number; bytesOut: number }
  | { event: 'boot-start'; reason: string }
  | { event: 'boot-ready'; seconds: number; pid: number }
  | { event: 'vm-adopted'; pid: number }
  | { event: 'idle-stop'; idleSeconds: number }
  | { event: 'store-sync'; registered: number; seconds: number; inGuest: number }
  | { event: 'vm-exited'; pid: number; reason: string }
  | { event: 'error'; message: string }
  | { event: 'shutdown'; signal: string; connections: number };

export interface EventSink {
  emit(event: AgentEvent): void;
  close(): Promise<void>;
}

export function eventLog(path: string, now: () => Date = () => new Date()): EventSink {
  const stream: WriteStream = createWriteStream(path, { flags: 'a', mode: 0o600 });
  return {
    emit(event) {
      stream.write(`${JSON.stringify({ time: now().toISOString(), ...event })}\n`);
    },
    close: () => new Promise((resolve) => stream.end(resolve)),
  };
}
