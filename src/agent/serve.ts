/**
 * `serve` as a library call: settles the listen address, the idle timeout and any settings given
 * (all remembered for the instance), takes the instance's agent lock, writes what Nix and ssh
 * need to reach the builder through it, runs the agent until a signal.
 */
import { badInput, failed } from '../errors.js';
import { parseDurationMs } from '../config/values.js';
import { guestArchOf, type SettingsFlags } from '../config/settings.js';
import { ensurePrivateDir } from '../fs/private-dir.js';
import { ensureIdentity, saveSettings } from '../instance/identity.js';
import { instanceSystems } from '../instance/guest-config.js';
import { settingsWithFlags } from '../instance/settings-flags.js';
import { writeNixFiles } from '../nix/registration.js';
import { acquireLock, lockHolder } from '../fs/lock.js';
import { instancePaths } from '../instance/paths.js';
import { pickFreePort } from '../instance/ports.js';
import { silentReporter, type Reporter } from '../instance/reporter.js';
import { selectDriver } from '../drivers/index.js';
import { Agent } from './agent.js';
import { loopbackPort, type TcpEndpoint } from '../ssh/endpoint.js';
import { eventLog } from './events.js';

export const defaultIdleTimeoutMs = 180 * 60_000;
const loopbackHosts = new Set(['127.0.0.1', '::1', 'localhost']);

/** "127.0.0.1:4022", "[::1]:4022", "localhost:4022" → loopback only. */
export function parseListen(text: string): TcpEndpoint {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text.trim());
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  if (!match || host === undefined || !Number.isInteger(port) || port < 1024 || port > 65535) {
    throw badInput(`--listen must be HOST:PORT with a port from 1024 to 65535 (got ${JSON.stringify(text)})`, 'for example: --listen 127.0.0.1:4022');
  }
  if (!loopbackHosts.has(host)) {
    throw badInput(`--listen must be a loopback address (got ${JSON.stringify(host)})`, 'the agent hands out SSH to the builder: it listens on 127.0.0.1 or ::1 only');
  }
  return host === 'localhost' ? loopbackPort(port) : { kind: 'tcp', host, port };
}

export interface ServeOptions {
  readonly listen?: string;
  readonly idleTimeout?: string;
  /** As start takes them; remembered for the boots the agent makes. */
  readonly settings?: SettingsFlags;
  readonly shutdownGraceMs?: number;
  readonly reporter?: Reporter;
  readonly onListening?: (address: string) => void;
}

export async function serve(name: string, options: ServeOptions): Promise<void> {
  const paths = instancePaths(name);
  const listenFlag = options.listen === undefined ? undefined : parseListen(options.listen);
  const idleFlag = options.idleTimeout === undefined ? undefined : parseDurationMs('--idle-timeout', options.idleTimeout, { min: 1000, max: 7 * 24 * 3_600_000 });
  const { remembered, settings: flagged } = await settingsWithFlags(paths, options.settings ?? {});
  await ensurePrivateDir(paths.stateDir);
  const holder = await lockHolder(paths.agentLock);
  if (holder !== undefined) throw failed(`an agent (pid ${holder}) already serves builder "${name}"`, 'stop it first, or use it: only one agent per instance');
  const lock = await acquireLock(paths.agentLock, { timeoutMs: 0 });
  try {
    const listen = listenFlag ?? loopbackPort(flagged.agentPort ?? (await pickFreePort()));
    const idleTimeoutMs = idleFlag ?? flagged.idleTimeoutMs ?? defaultIdleTimeoutMs;
    const settings = { ...flagged, agentPort: listen.port, ...(idleFlag === undefined ? {} : { idleTimeoutMs }) };
    if (JSON.stringify(settings) !== JSON.stringify(remembered)) await saveSettings(paths, settings);
    // Nix and ssh reach the builder through the agent before its first boot: keys, the pinned
    // host key, the machines file and the ssh block (which the Nix modules Include).
    const identity = await ensureIdentity(paths, settings, selectDriver(settings.driver).capabilities);
    await writeNixFiles(paths, identity, { systems: instanceSystems(identity.settings.systems, guestArchOf(identity.settings)), cores: identity.settings.cores });
    const agent = new Agent({
      paths,
      listen,
      idleTimeoutMs,
      shutdownGraceMs: options.shutdownGraceMs ?? 30_000,
      events: eventLog(paths.agentLog),
      reporter: options.reporter ?? silentReporter,
    });
    // Heard from before listen(), which may adopt a running VM: a signal in between then ends in a
    // shutdown that stops it, not in the default action that would leave it running unserved.
    const signalled = new Promise<string>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    try {
      await agent.listen();
    } catch (error) {
      throw failed(`cannot listen on ${agent.listenAddress}: ${(error as Error).message}`, 'another program holds the port: pick another with --listen');
    }
    options.onListening?.(agent.listenAddress);
    await agent.shutdown(await signalled);
  } finally {
    await lock.release();
  }
}
