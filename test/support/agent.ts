/** Runs `linux-builder serve` as a child process and reads its event log. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { cliPath, type Sandbox } from './cli.js';

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export interface RunningAgent {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
}

export async function startAgent(box: Sandbox, name: string, args: string[]): Promise<RunningAgent> {
  const child = spawn(process.execPath, [cliPath, '--name', name, 'serve', ...args], { env: box.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`agent did not start: ${output}`)), 30_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('exit', () => reject(new Error(`agent exited: ${output}`)));
  });
  return { child, exited };
}

export interface LoggedEvent {
  time: string;
  event: string;
  [key: string]: unknown;
}

export function agentEvents(box: Sandbox, name: string): LoggedEvent[] {
  const text = readFileSync(join(box.stateHome, 'linux-builder', name, 'agent.log'), 'utf8');
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as LoggedEvent);
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** The last lines of the instance's agent.log, for a failure message. */
export function agentLogTail(box: Sandbox, name: string, lines = 30): string {
  try {
    return readFileSync(join(box.stateHome, 'linux-builder', name, 'agent.log'), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no agent.log)';
  }
}
