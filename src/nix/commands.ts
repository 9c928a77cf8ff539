/** nix-config as a library call: print, install or uninstall an instance's registration. */
import { instancePaths } from '../instance/paths.js';
import { ensureIdentity, loadSettings } from '../instance/identity.js';
import { selectDriver } from '../drivers/index.js';
import { instanceSystems } from '../instance/guest-config.js';
import { daemonListening, restartDaemon } from './daemon.js';
import { guestArchOf } from '../config/settings.js';
import {
  configFiles,
  defaultScope,
  install,
  registration,
  uninstall,
  writeNixFiles,
  type ConfigFiles,
  type Registration,
  type Scope,
} from './registration.js';

/**
 * What a running nix-daemon makes of an install: it reads the machines file at every build;
 * builders in nix.conf only once restarted.
 */
export type DaemonEffect =
  | { kind: 'none' }
  | { kind: 'reads-machines-file' }
  | { kind: 'restarted'; command: string }
  | { kind: 'restart-needed'; command: string; why: string };

export type NixConfigResult =
  | { kind: 'printed'; reg: Registration; machinesFile: string }
  | { kind: 'installed'; reg: Registration; machinesFile: string; daemon: DaemonEffect }
  | { kind: 'uninstalled'; touched: string[] };

export async function nixConfig(
  name: string,
  mode: 'print' | 'install' | 'uninstall',
  options: { scope?: Scope | undefined; overrides?: Partial<Record<keyof ConfigFiles, string | undefined>> } = {},
): Promise<NixConfigResult> {
  const paths = instancePaths(name);
  if (mode === 'uninstall') return { kind: 'uninstalled', touched: await uninstall(paths) };
  const settings = await loadSettings(paths);
  const identity = await ensureIdentity(paths, settings, selectDriver().capabilities);
  const machine = { systems: instanceSystems(identity.settings.systems, guestArchOf(identity.settings)), cores: identity.settings.cores };
  await writeNixFiles(paths, identity, machine);
  const scope = options.scope ?? defaultScope();
  const overrides = Object.fromEntries(Object.entries(options.overrides ?? {}).filter(([, v]) => v !== undefined)) as Partial<ConfigFiles>;
  const reg = await registration(paths, identity, machine, scope, configFiles(scope, overrides));
  if (mode === 'print') return { kind: 'printed', reg, machinesFile: paths.machines };
  await install(paths, reg);
  return { kind: 'installed', reg, machinesFile: paths.machines, daemon: await daemonEffect(reg) };
}

async function daemonEffect(reg: Registration): Promise<DaemonEffect> {
  // A user's builders reach the daemon with each connection (trusted users); only the system's wait for a restart.
  if (reg.scope !== 'system' || !(await daemonListening())) return { kind: 'none' };
  if (reg.route === 'machines-file') return { kind: 'reads-machines-file' };
  const restart = await restartDaemon();
  return restart.restarted ? { kind: 'restarted', command: restart.command } : { kind: 'restart-needed', command: restart.command, why: restart.why };
}
