/**
 * The effects of `service install|uninstall|status`: write or remove the file, then run the
 * steps commands.ts decided. A missing service manager never loses the file: install keeps
 * it and fails with how to run the agent by hand.
 */
import { execFile } from 'node:child_process';
import { access, mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { errnoCode, failed } from '../../errors.js';
import { findOnPath } from '../../drivers/process.js';
import { readTextIfExists, writeFileAtomic } from '../../fs/files.js';
import { ensurePrivateDir } from '../../fs/private-dir.js';
import { forgetSteps, loadSteps, probeCommand, unloadSteps, type Step } from './commands.js';
import { serviceFileText, type ServiceManager, type ServicePlan } from './plan.js';

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export type Availability = { readonly running: true } | { readonly running: false; readonly why: string };

/** What the effects need from the machine; tests replace them only where launchd cannot run. */
export interface ServiceDeps {
  readonly run: (argv: readonly string[]) => Promise<CommandResult>;
  readonly availability: (manager: ServiceManager) => Promise<Availability>;
}

/** Never throws: a command that cannot start reports code 127. */
export function runCommand(argv: readonly string[]): Promise<CommandResult> {
  const [command = '', ...args] = argv;
  return new Promise((resolve) => {
    // Stopping waits for the agent's own shutdown (TimeoutStopSec / ExitTimeOut = 60 s).
    execFile(command, args, { timeout: 90_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 127;
      resolve({ code, stdout, stderr: stderr || (error?.message ?? '') });
    });
  });
}

export async function managerAvailability(manager: ServiceManager): Promise<Availability> {
  if (manager === 'systemd') {
    // The test sd_booted() uses: this directory exists only when systemd is PID 1.
    try {
      await access('/run/systemd/system');
      return { running: true };
    } catch {
      return { running: false, why: 'systemd is not running here (PID 1 is not systemd)' };
    }
  }
  const launchctl = await findOnPath('launchctl', `${process.env.PATH ?? ''}:/bin`);
  return launchctl === undefined ? { running: false, why: 'launchctl is not found' } : { running: true };
}

export const realDeps: ServiceDeps = { run: runCommand, availability: managerAvailability };

export function serveByHand(name: string): string {
  return `linux-builder --name ${name} serve`;
}

function logHint(plan: ServicePlan): string {
  const logs =
    plan.manager === 'systemd'
      ? `journalctl${plan.scope === 'user' ? ' --user' : ''} -u ${plan.serviceId}`
      : `the log ${plan.logPath}`;
  return `see ${logs}, or start the agent by hand: ${serveByHand(plan.name)}`;
}

async function runSteps(plan: ServicePlan, steps: readonly Step[], deps: ServiceDeps, what: string): Promise<void> {
  for (const step of steps) {
    const result = await deps.run(step.argv);
    if (result.code === 0 || step.mayFail) continue;
    const reason = (result.stderr || result.stdout).trim().split('\n')[0] ?? '';
    throw failed(`${what}, but "${step.argv.join(' ')}" failed (exit ${result.code}): ${reason}`, logHint(plan));
  }
}

async function isLoaded(plan: ServicePlan, deps: ServiceDeps): Promise<boolean> {
  return (await deps.run(probeCommand(plan))).code === 0;
}

function writeFailure(plan: ServicePlan, error: unknown): Error {
  const code = errnoCode(error);
  if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS') return error instanceof Error ? error : new Error(String(error));
  return failed(
    `cannot write ${plan.file} (${code})`,
    plan.scope === 'system' ? `a system service needs root: sudo linux-builder --name ${plan.name} service install, or --scope user` : 'make the directory writable, or choose another with --unit-dir',
    error,
  );
}

export type InstallResult =
  | { readonly kind: 'written'; readonly file: string }
  | { readonly kind: 'loaded'; readonly file: string; readonly changed: boolean };

export async function installService(plan: ServicePlan, deps: ServiceDeps = realDeps): Promise<InstallResult> {
  const text = serviceFileText(plan);
  const changed = (await readTextIfExists(plan.file)) !== text;
  try {
    // Unit directories are public (0755) and the file must be readable by the manager (0644).
    await mkdir(dirname(plan.file), { recursive: true, mode: 0o755 });
    if (changed) await writeFileAtomic(plan.file, text, 0o644);
  } catch (error) {
    throw writeFailure(plan, error);
  }
  if (plan.customDir) return { kind: 'written', file: plan.file };
  const availability = await deps.availability(plan.manager);
  if (!availability.running) {
    throw failed(
      `wrote ${plan.file} but did not load it: ${availability.why}, so the agent is not running`,
      `start the agent by hand (or from another supervisor): ${serveByHand(plan.name)}`,
    );
  }
  // launchd opens the log itself and does not create its directory.
  if (plan.manager === 'launchd') await ensurePrivateDir(dirname(plan.logPath));
  const loaded = plan.manager === 'launchd' && (await isLoaded(plan, deps));
  await runSteps(plan, loadSteps(plan, { changed, loaded }), deps, `wrote ${plan.file}`);
  return { kind: 'loaded', file: plan.file, changed };
}

export type UninstallResult =
  | { readonly kind: 'not-installed'; readonly file: string }
  /** `notStopped`: why the manager was not asked to stop it (it is not running here, or --unit-dir). */
  | { readonly kind: 'removed'; readonly file: string; readonly notStopped?: string };

export async function uninstallService(plan: ServicePlan, deps: ServiceDeps = realDeps): Promise<UninstallResult> {
  if ((await readTextIfExists(plan.file)) === undefined) return { kind: 'not-installed', file: plan.file };
  const availability: Availability = plan.customDir
    ? { running: false, why: 'the file is outside the directories the service manager reads' }
    : await deps.availability(plan.manager);
  if (availability.running) {
    const loaded = plan.manager === 'systemd' || (await isLoaded(plan, deps));
    await runSteps(plan, unloadSteps(plan, { loaded }), deps, `could not stop ${plan.serviceId}; ${plan.file} is kept`);
  }
  try {
    await rm(plan.file, { force: true });
  } catch (error) {
    throw writeFailure(plan, error);
  }
  if (!availability.running) return { kind: 'removed', file: plan.file, notStopped: availability.why };
  await runSteps(plan, forgetSteps(plan), deps, `removed ${plan.file}`);
  return { kind: 'removed', file: plan.file };
}

export interface ServiceStatus {
  readonly file: string;
  readonly installed: boolean;
  /** What the manager says: systemd's active/inactive/failed/…, launchd's running/not loaded/…; undefined when it cannot be asked. */
  readonly state: string | undefined;
  /** Why state is undefined. */
  readonly why?: string;
}

/** launchctl print's "state = running" line. */
export function launchdState(printed: string): string {
  return /^\s*state = (.+)$/m.exec(printed)?.[1]?.trim() ?? 'loaded';
}

export async function serviceStatus(plan: ServicePlan, deps: ServiceDeps = realDeps): Promise<ServiceStatus> {
  const installed = (await readTextIfExists(plan.file)) !== undefined;
  const base = { file: plan.file, installed };
  if (plan.customDir) return { ...base, state: undefined, why: 'the file is outside the directories the service manager reads' };
  const availability = await deps.availability(plan.manager);
  if (!availability.running) return { ...base, state: undefined, why: availability.why };
  const result = await deps.run(probeCommand(plan));
  if (plan.manager === 'launchd') return { ...base, state: result.code === 0 ? launchdState(result.stdout) : 'not loaded' };
  // is-active prints the state and exits non-zero for anything but active; no output: it could not ask.
  const state = result.stdout.trim();
  return state === '' ? { ...base, state: undefined, why: result.stderr.trim().split('\n')[0] ?? 'systemctl failed' } : { ...base, state };
}
