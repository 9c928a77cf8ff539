/**
 * `serve` as a library call: settles the listen address and idle timeout (remembered for the
 * instance), takes the instance's agent lock, runs the agent until a signal.
 */
import { badInput, failed } from '../errors.js';
import { parseDurationMs } from '../config/values.js';
import { ensurePrivateDir } from '../fs/private-dir.js';
import { loadSettings, saveSettings } from '../instance/identity.js';
import { acquireLock, lockHolder } from '../fs/lock.js';
import { instancePaths } from '../instance/paths.js';
import { pickFreePort } from '../instance/ports.js';
import { silentReporter, type Reporter } from '../instance/lifecycle.js';
import { Agent, type Listen } from './agent.js';
import { eventLog } from './events.js';

export const defaultIdleTimeoutMs = 180 * 60_000;
const loopbackHosts = new Set(['127.0.0.1', '::1', 'localhost']);

/** "127.0.0.1:4022", "[::1]:4022", "localhost:4022" → loopback only. */
export function parseListen(text: string): Listen {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text.trim());
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  if (!match || host === undefined || !Number.isInteger(port) || port < 1024 || port > 65535) {
    throw badInput(`--listen must be HOST:PORT with a port from 1024 to 65535 (got ${JSON.stringify(text)})`, 'for example: --listen 127.0.0.1:4022');
  }
  if (!loopbackHosts.has(host)) {
    throw badInput(`--listen must be a loopback address (got ${JSON.stringify(host)})`, 'the agent hands out SSH to the builder: it listens on 127.0.0.1 or ::1 only');
  }
  return { host: host === 'localhost' ? '127.0.0.1' : host, port };
}

export interface ServeOptions {
  readonly listen?: string;
  readonly idleTimeout?: string;
  readonly shutdownGraceMs?: number;
  readonly reporter?: Reporter;
  readonly onListening?: (address: string) => void;
}

export async function serve(name: string, options: ServeOptions): Promise<void> {
  const paths = instancePaths(name);
  const listenFlag = options.listen === undefined ? undefined : parseListen(options.listen);
  const idleFlag = options.idleTimeout === undefined ? undefined : parseDurationMs('--idle-timeout', options.idleTimeout, { min: 1000, max: 7 * 24 * 3_600_000 });
  const settings = await loadSettings(paths);
  await ensurePrivateDir(paths.stateDir);
  const holder = await lockHolder(paths.agentLock);
  if (holder !== undefined) throw failed(`an agent (pid ${holder}) already serves builder "${name}"`, 'stop it first, or use it: only one agent per instance');
  const lock = await acquireLock(paths.agentLock, { timeoutMs: 0 });
  try {
    const listen = listenFlag ?? { host: '127.0.0.1', port: settings.agentPort ?? (await pickFreePort()) };
    const idleTimeoutMs = idleFlag ?? settings.idleTimeoutMs ?? defaultIdleTimeoutMs;
    if (listen.port !== settings.agentPort || idleTimeoutMs !== (settings.idleTimeoutMs ?? defaultIdleTimeoutMs)) {
      await saveSettings(paths, { ...settings, agentPort: listen.port, ...(idleFlag === undefined ? {} : { idleTimeoutMs }) });
    }
    const agent = new Agent({
      paths,
      listen,
      idleTimeoutMs,
      shutdownGraceMs: options.shutdownGraceMs ?? 30_000,
      events: eventLog(paths.agentLog),
      reporter: options.reporter ?? silentReporter,
    });
    try {
      await agent.listen();
    } catch (error) {
      throw failed(`cannot listen on ${agent.listenAddress}: ${(error as Error).message}`, 'another program holds the port: pick another with --listen');
    }
    options.onListening?.(agent.listenAddress);
    const signal = await new Promise<string>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    await agent.shutdown(signal);
  } finally {
    await lock.release();
  }
}
