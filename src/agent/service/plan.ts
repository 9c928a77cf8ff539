/**
 * What `service install` would do for one instance, decided without touching anything: which
 * service manager, which scope, which file, which command line and environment.
 */
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { failed } from '../../errors.js';
import { instancePaths, roots } from '../../instance/paths.js';
import { launchdLabel, launchdPlist } from './launchd-plist.js';
import { systemdUnit, systemdUnitName } from './systemd-unit.js';

export type ServiceScope = 'user' | 'system';
export type ServiceManager = 'systemd' | 'launchd';

/** The facts a plan depends on, so tests can pretend to be another machine. */
export interface ServiceHost {
  readonly platform: NodeJS.Platform;
  readonly uid: number;
  readonly env: NodeJS.ProcessEnv;
}

export function currentHost(): ServiceHost {
  return { platform: process.platform, uid: process.getuid?.() ?? 0, env: process.env };
}

export interface ServicePlan {
  readonly name: string;
  readonly manager: ServiceManager;
  readonly scope: ServiceScope;
  /** What the manager calls it: the systemd unit name or the launchd label. */
  readonly serviceId: string;
  readonly file: string;
  /** --unit-dir pointed somewhere the manager does not read: write the file, load nothing. */
  readonly customDir: boolean;
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly uid: number;
  readonly stateDir: string;
  readonly logPath: string;
}

/** This package's bin/linux-builder.js: src/agent/service/ and dist/agent/service/ sit at the same depth. */
export function binPath(moduleUrl: string = import.meta.url): string {
  return join(dirname(fileURLToPath(moduleUrl)), '..', '..', '..', 'bin', 'linux-builder.js');
}

export function agentArgv(name: string): string[] {
  return [process.execPath, binPath(), '--name', name, 'serve'];
}

/**
 * The variables that decide where the instance's files are (so the service sees the instance
 * the installing CLI saw), and PATH, so it finds the same qemu and ssh: service managers start
 * jobs with a minimal PATH that misses Nix profiles and Homebrew.
 */
export const carriedVariables = ['HOME', 'XDG_CONFIG_HOME', 'XDG_STATE_HOME', 'XDG_CACHE_HOME', 'XDG_RUNTIME_DIR', 'PATH'] as const;

export function serviceEnvironment(env: NodeJS.ProcessEnv): Record<string, string> {
  const carried: Record<string, string> = {};
  for (const name of carriedVariables) {
    const value = env[name];
    if (value !== undefined && value !== '') carried[name] = value;
  }
  return carried;
}

export function defaultServiceScope(uid: number): ServiceScope {
  return uid === 0 ? 'system' : 'user';
}

export function serviceManagerFor(platform: NodeJS.Platform): ServiceManager {
  if (platform === 'linux') return 'systemd';
  if (platform === 'darwin') return 'launchd';
  throw failed(`no service manager support on ${platform}`, 'run the agent by hand: linux-builder serve');
}

/** Where the manager reads its files for a scope. */
export function defaultUnitDir(manager: ServiceManager, scope: ServiceScope, env: NodeJS.ProcessEnv): string {
  const home = env.HOME ?? homedir();
  if (manager === 'systemd') {
    return scope === 'system' ? '/etc/systemd/system' : join(env.XDG_CONFIG_HOME || join(home, '.config'), 'systemd', 'user');
  }
  return scope === 'system' ? '/Library/LaunchDaemons' : join(home, 'Library', 'LaunchAgents');
}

export function servicePlan(
  name: string,
  options: { scope?: ServiceScope | undefined; unitDir?: string | undefined } = {},
  host: ServiceHost = currentHost(),
): ServicePlan {
  const paths = instancePaths(name, roots(host.env, host.platform, host.uid));
  const manager = serviceManagerFor(host.platform);
  const scope = options.scope ?? defaultServiceScope(host.uid);
  const serviceId = manager === 'systemd' ? systemdUnitName(name) : launchdLabel(name);
  const fileName = manager === 'systemd' ? serviceId : `${serviceId}.plist`;
  const standardDir = defaultUnitDir(manager, scope, host.env);
  const dir = options.unitDir === undefined ? standardDir : resolve(options.unitDir);
  return {
    name,
    manager,
    scope,
    serviceId,
    file: join(dir, fileName),
    customDir: dir !== standardDir,
    argv: agentArgv(name),
    env: serviceEnvironment(host.env),
    uid: host.uid,
    stateDir: paths.stateDir,
    logPath: paths.serviceLog,
  };
}

/** The file's text for the plan's manager. */
export function serviceFileText(plan: ServicePlan): string {
  return plan.manager === 'systemd'
    ? systemdUnit({ name: plan.name, execStart: plan.argv, scope: plan.scope, stateDir: plan.stateDir, env: plan.env })
    : launchdPlist({ name: plan.name, programArguments: plan.argv, logPath: plan.logPath, scope: plan.scope, env: plan.env });
}
