/**
 * The systemctl and launchctl command lines for each step, as data: what install, uninstall and
 * status run is decided here and tested as a table; manager.ts only runs them.
 */
import type { ServicePlan } from './plan.js';

export interface Step {
  readonly argv: readonly string[];
  /** A failure here is expected in some states (nothing to reset, already gone) and ignored. */
  readonly mayFail?: boolean;
}

function systemctl(plan: ServicePlan, ...args: string[]): string[] {
  return ['systemctl', ...(plan.scope === 'user' ? ['--user'] : []), ...args];
}

/** launchd's domain: the user's GUI session, or the system. */
export function launchdDomain(plan: ServicePlan): string {
  return plan.scope === 'user' ? `gui/${plan.uid}` : 'system';
}

export function launchdTarget(plan: ServicePlan): string {
  return `${launchdDomain(plan)}/${plan.serviceId}`;
}

/** Asks whether the service is loaded (launchd) or active (systemd). */
export function probeCommand(plan: ServicePlan): readonly string[] {
  return plan.manager === 'systemd' ? systemctl(plan, 'is-active', plan.serviceId) : ['launchctl', 'print', launchdTarget(plan)];
}

/**
 * After the file is written. `changed`: its text differs from what was there, so a running
 * agent is restarted onto it; an unchanged, running one is left alone (it may be mid-build).
 */
export function loadSteps(plan: ServicePlan, state: { changed: boolean; loaded: boolean }): Step[] {
  if (plan.manager === 'systemd') {
    return [
      { argv: systemctl(plan, 'daemon-reload') },
      // Restarts only a running agent; a stopped one is started by enable --now below.
      ...(state.changed ? [{ argv: systemctl(plan, 'try-restart', plan.serviceId) }] : []),
      { argv: systemctl(plan, 'enable', '--now', plan.serviceId) },
    ];
  }
  if (state.loaded && !state.changed) return [];
  return [
    ...(state.loaded ? [{ argv: ['launchctl', 'bootout', launchdTarget(plan)] }] : []),
    { argv: ['launchctl', 'bootstrap', launchdDomain(plan), plan.file] },
  ];
}

/** Before the file is removed: stop the agent (it powers the VM off) and take it out of the boot. */
export function unloadSteps(plan: ServicePlan, state: { loaded: boolean }): Step[] {
  if (plan.manager === 'systemd') return [{ argv: systemctl(plan, 'disable', '--now', plan.serviceId) }];
  return state.loaded ? [{ argv: ['launchctl', 'bootout', launchdTarget(plan)] }] : [];
}

/** After the file is removed: systemd forgets the unit; launchd already has. */
export function forgetSteps(plan: ServicePlan): Step[] {
  if (plan.manager === 'launchd') return [];
  return [{ argv: systemctl(plan, 'daemon-reload') }, { argv: systemctl(plan, 'reset-failed', plan.serviceId), mayFail: true }];
}
