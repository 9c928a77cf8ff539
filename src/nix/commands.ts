/** nix-config as a library call: print, install or uninstall an instance's registration. */
import { instancePaths } from '../instance/paths.js';
import { ensureIdentity, loadSettings } from '../instance/identity.js';
import { instanceSystems } from '../instance/guest-config.js';
import { guestArchOf } from '../config/settings.js';
import {
  configFiles,
  defaultScope,
  install,
  registration,
  uninstall,
  writeMachinesFile,
  type ConfigFiles,
  type Registration,
  type Scope,
} from './registration.js';

export type NixConfigResult =
  | { kind: 'printed' | 'installed'; reg: Registration; machinesFile: string }
  | { kind: 'uninstalled'; touched: string[] };

export async function nixConfig(
  name: string,
  mode: 'print' | 'install' | 'uninstall',
  options: { scope?: Scope | undefined; overrides?: Partial<Record<keyof ConfigFiles, string | undefined>> } = {},
): Promise<NixConfigResult> {
  const paths = instancePaths(name);
  if (mode === 'uninstall') return { kind: 'uninstalled', touched: await uninstall(paths) };
  const settings = await loadSettings(paths);
  const identity = await ensureIdentity(paths, settings);
  const machine = { systems: instanceSystems(identity.settings.systems, guestArchOf(identity.settings)), cores: identity.settings.cores };
  await writeMachinesFile(paths, identity, machine);
  const scope = options.scope ?? defaultScope();
  const overrides = Object.fromEntries(Object.entries(options.overrides ?? {}).filter(([, v]) => v !== undefined)) as Partial<ConfigFiles>;
  const reg = await registration(paths, identity, machine, scope, configFiles(scope, overrides));
  if (mode === 'install') await install(paths, reg);
  return { kind: mode === 'install' ? 'installed' : 'printed', reg, machinesFile: paths.machines };
}
