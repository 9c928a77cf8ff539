/**
 * Registering an instance with the host's Nix and ssh: the machines line, the ssh_config Host
 * block, the nix.conf lines; and installing them between markers where Nix and ssh read them.
 */
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { homedir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { failed } from '../errors.js';
import { OutOfSpace, readTextIfExists, writeFileAtomic } from '../fs/files.js';
import { ensurePrivateDir } from '../fs/private-dir.js';
import { readVersionedJson, versionedFile, writeVersionedJson } from '../fs/versioned-json.js';
import { connectionSharing, type Identity } from '../instance/identity.js';
import type { InstancePaths } from '../instance/paths.js';
import { sshConfigBlock } from '../ssh/config.js';
import { loopbackPort } from '../ssh/endpoint.js';
import { removeBlock, upsertBlock } from './blocks.js';
import { builderEntries, hostNixSettings } from './host-nix.js';
import { machinesLine } from './machines.js';

export type Scope = 'user' | 'system';

export interface ConfigFiles {
  readonly nixConf: string;
  readonly sshConfig: string;
  /** The machines file Nix's default builders (@<conf dir>/machines) name; used in the system scope. */
  readonly machines: string;
}

/** Where Nix and ssh read their config for a scope; overrides win. */
export function configFiles(scope: Scope, overrides: Partial<ConfigFiles> = {}, env: NodeJS.ProcessEnv = process.env): ConfigFiles {
  const userNixConf =
    env.NIX_USER_CONF_FILES?.split(':').find((f) => f !== '') ??
    join(env.XDG_CONFIG_HOME ?? join(env.HOME ?? homedir(), '.config'), 'nix', 'nix.conf');
  const confDir = env.NIX_CONF_DIR ?? '/etc/nix';
  return {
    nixConf: overrides.nixConf ?? (scope === 'system' ? join(confDir, 'nix.conf') : userNixConf),
    machines: overrides.machines ?? join(confDir, 'machines'),
    // ssh reads the home directory from the password database, not $HOME.
    sshConfig: overrides.sshConfig ?? (scope === 'system' ? '/etc/ssh/ssh_config' : join(userInfo().homedir, '.ssh', 'config')),
  };
}

export function defaultScope(): Scope {
  return process.getuid?.() === 0 ? 'system' : 'user';
}

export interface MachineOptions {
  readonly systems: readonly string[];
  readonly cores: number;
}

export function instanceMachinesLine(paths: InstancePaths, identity: Identity, options: MachineOptions): string {
  return machinesLine({
    alias: identity.sshHost.alias,
    user: identity.sshHost.user,
    systems: options.systems,
    identityFile: paths.clientKey,
    maxJobs: options.cores,
    speedFactor: 1,
    supportedFeatures: ['benchmark', 'big-parallel'],
    mandatoryFeatures: [],
    hostPublicKey: identity.hostPublicKey,
  });
}

/**
 * The instance's own machines file and the ssh_config block Nix's ssh needs, kept current at
 * every start, serve and nix-config: what the installed config names (@machines file), or
 * Includes (the Nix modules' ssh config), follows new keys and ports without a reinstall.
 */
export async function writeNixFiles(paths: InstancePaths, identity: Identity, options: MachineOptions): Promise<void> {
  await writeFileAtomic(paths.machines, `${instanceMachinesLine(paths, identity, options)}\n`, 0o644);
  await writeFileAtomic(paths.nixSshConfig, sshBlock(paths, identity), 0o644);
}

/**
 * With an agent configured, Nix connects to the agent, whose first connection boots the VM:
 * the handshake may then wait for a whole boot, hence the long ConnectTimeout. No shared
 * connection then: each build must be a connection the agent sees, so it can register the host
 * paths the build needs first, and so an idle VM is not kept up by a lingering master.
 */
export function sshBlock(paths: InstancePaths, identity: Identity): string {
  const agentPort = identity.settings.agentPort;
  if (agentPort === undefined) return sshConfigBlock(identity.sshHost, connectionSharing(paths));
  return sshConfigBlock({ ...identity.sshHost, endpoint: loopbackPort(agentPort) }, [], 300);
}

/**
 * How the builder reaches Nix's builders. `machines-file`: the system's builders already name
 * the machines file (Nix's default, @/etc/nix/machines), which Nix — a running nix-daemon too —
 * reads at every build, so the instance goes there. `nix-conf`: builders in nix.conf, which a
 * nix-daemon reads only at its start.
 */
export type Route = 'machines-file' | 'nix-conf';

export function chooseRoute(scope: Scope, files: ConfigFiles, effectiveBuilders: string): Route {
  // A nix.conf given elsewhere (--nix-conf) is not the one beside that machines file: it gets builders itself.
  const besideNixConf = dirname(files.machines) === dirname(files.nixConf);
  return scope === 'system' && besideNixConf && builderEntries(effectiveBuilders).includes(`@${files.machines}`) ? 'machines-file' : 'nix-conf';
}

/** builders = what the host had (minus this instance) + this instance's machines file; or only the substitutes line when the machines file carries it. */
export function nixConfBody(paths: InstancePaths, previousBuilders: string, route: Route = 'nix-conf'): string {
  if (route === 'machines-file') return 'builders-use-substitutes = true\n';
  const ours = `@${paths.machines}`;
  const kept = builderEntries(previousBuilders).filter((entry) => entry !== ours);
  return [`builders = ${[...kept, ours].join(';')}`, 'builders-use-substitutes = true', ''].join('\n');
}

/** The block for the system's machines file: a reference to the instance's own, which start keeps current. */
export function machinesFileBody(paths: InstancePaths): string {
  return `@${paths.machines}\n`;
}

export interface Registration {
  readonly scope: Scope;
  readonly files: ConfigFiles;
  readonly route: Route;
  readonly machinesLine: string;
  readonly sshBlock: string;
  readonly nixConf: string;
  /** For files.machines, on the machines-file route. */
  readonly machinesBlock?: string;
}

/** What `nix-config` prints and installs. Reads the host's effective builders from Nix. */
export async function registration(paths: InstancePaths, identity: Identity, machine: MachineOptions, scope: Scope, files: ConfigFiles): Promise<Registration> {
  // The effective value may already include our entry (a re-install): nixConfBody drops it.
  const settings = await hostNixSettings();
  const route = chooseRoute(scope, files, settings.builders);
  return {
    scope,
    files,
    route,
    machinesLine: instanceMachinesLine(paths, identity, machine),
    sshBlock: sshBlock(paths, identity),
    nixConf: nixConfBody(paths, settings.builders, route),
    ...(route === 'machines-file' ? { machinesBlock: machinesFileBody(paths) } : {}),
  };
}

const installedSchema = z.object({
  version: z.literal(1),
  files: z.array(z.object({ path: z.string(), created: z.boolean(), addedNewline: z.boolean() })),
});
type Installed = z.infer<typeof installedSchema>;

const installedFile = versionedFile(installedSchema, 1);

async function readInstalled(paths: InstancePaths): Promise<Installed> {
  const read = await readVersionedJson(paths.installed, installedFile);
  switch (read.kind) {
    case 'missing':
      return { version: 1, files: [] };
    case 'ok':
      return read.value;
    case 'corrupt':
      throw failed(`${paths.installed} is corrupt`, `remove the linux-builder blocks from your nix.conf and ssh config by hand, then: rm ${paths.installed}`);
    case 'newer':
      throw failed(read.reason, `use that linux-builder to uninstall, or remove the linux-builder blocks from your nix.conf and ssh config by hand, then: rm ${paths.installed}`);
  }
}

/** The file's own mode is kept; a new file gets newMode. */
async function writeKeepingMode(path: string, text: string, newMode: number): Promise<void> {
  const mode = await stat(path).then((s) => s.mode & 0o7777, () => newMode);
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  await writeFileAtomic(path, text, mode);
}

async function editFile(path: string, edit: (text: string) => { text: string; addedNewline: boolean }): Promise<{ created: boolean; addedNewline: boolean }> {
  const before = await readTextIfExists(path);
  const result = edit(before ?? '');
  if (before === result.text) return { created: false, addedNewline: false };
  try {
    await writeKeepingMode(path, result.text, path.includes('/.ssh/') ? 0o600 : 0o644);
  } catch (error) {
    if (error instanceof OutOfSpace) throw error;
    throw failed(`cannot write ${path}: ${(error as Error).message}`, 'run as root for --scope system, or choose --scope user');
  }
  return { created: before === undefined, addedNewline: result.addedNewline };
}

/** Writes the blocks; idempotent: installing twice is installing once. */
export async function install(paths: InstancePaths, reg: Registration): Promise<void> {
  await ensurePrivateDir(paths.stateDir);
  const installed = await readInstalled(paths);
  const remember = (path: string, result: { created: boolean; addedNewline: boolean }): void => {
    const known = installed.files.find((f) => f.path === path);
    if (known) return;
    installed.files.push({ path, ...result });
  };
  remember(reg.files.sshConfig, await editFile(reg.files.sshConfig, (text) => upsertBlock(text, paths.name, reg.sshBlock, 'first')));
  remember(reg.files.nixConf, await editFile(reg.files.nixConf, (text) => upsertBlock(text, paths.name, reg.nixConf, 'last')));
  const { machinesBlock } = reg;
  if (machinesBlock !== undefined) remember(reg.files.machines, await editFile(reg.files.machines, (text) => upsertBlock(text, paths.name, machinesBlock, 'last')));
  await writeVersionedJson(paths.installed, installedFile, installed);
}

/** Removes exactly what install added; files install created are removed when nothing else is in them. */
export async function uninstall(paths: InstancePaths): Promise<string[]> {
  const installed = await readInstalled(paths);
  const touched: string[] = [];
  for (const file of installed.files) {
    const text = await readFile(file.path, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    const next = removeBlock(text, paths.name, file.addedNewline);
    if (next === text) continue;
    if (next === '' && file.created) await rm(file.path, { force: true });
    else await writeKeepingMode(file.path, next, 0o644);
    touched.push(file.path);
  }
  await rm(paths.installed, { force: true });
  return touched;
}
