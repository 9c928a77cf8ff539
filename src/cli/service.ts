import { badInput } from '../errors.js';
import { installService, serveByHand, serviceStatus, uninstallService } from '../agent/service/manager.js';
import { servicePlan, type ServiceScope } from '../agent/service/plan.js';

export type ServiceAction = 'install' | 'uninstall' | 'status';

export interface ServiceOptions {
  scope?: ServiceScope;
  unitDir?: string;
}

const actions: readonly string[] = ['install', 'uninstall', 'status'];

/** Exit 0, or 1 when status finds the service installed but not running. */
export async function serviceCommand(name: string, action: ServiceAction, options: ServiceOptions): Promise<number> {
  if (!actions.includes(action)) throw badInput(`unknown service action ${JSON.stringify(action)}`, 'use: service install, service uninstall or service status');
  if (options.scope !== undefined && options.scope !== 'user' && options.scope !== 'system') {
    throw badInput(`--scope must be user or system (got ${JSON.stringify(options.scope)})`, 'the default is system as root, user otherwise');
  }
  if (options.unitDir === '') throw badInput('--unit-dir must not be empty', 'name a directory, e.g. --unit-dir ./units');
  const plan = servicePlan(name, options);
  const label = `builder "${name}" service (${plan.manager}, ${plan.scope} scope)`;

  if (action === 'install') {
    const result = await installService(plan);
    if (result.kind === 'written') console.log(`${label}: wrote ${result.file}; not loaded, as --unit-dir is outside the directories ${plan.manager} reads`);
    else console.log(`${label}: installed ${result.file} and started ${plan.serviceId}${result.changed ? '' : ' (file unchanged)'}`);
    return 0;
  }
  if (action === 'uninstall') {
    const result = await uninstallService(plan);
    if (result.kind === 'not-installed') console.log(`${label}: not installed (no ${result.file})`);
    else console.log(`${label}: removed ${result.file}${result.notStopped === undefined ? ` and stopped ${plan.serviceId}` : `; nothing stopped: ${result.notStopped}`}`);
    return 0;
  }
  const s = await serviceStatus(plan);
  if (!s.installed) {
    console.log(`${label}: not installed (no ${s.file})${s.state === 'active' || s.state === 'running' ? `, yet ${plan.serviceId} is ${s.state}` : ''}`);
    return 0;
  }
  if (s.state === undefined) {
    console.log(`${label}: installed at ${s.file}, state unknown: ${s.why ?? 'the service manager cannot be asked'}; by hand: ${serveByHand(name)}`);
    return 1;
  }
  console.log(`${label}: installed at ${s.file}, ${s.state}`);
  return s.state === 'active' || s.state === 'running' ? 0 : 1;
}
