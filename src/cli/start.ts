import { dryRun, start, type StartResult } from '../instance/lifecycle.js';
import { terminalReporter } from './output.js';
import type { SettingsFlags } from '../config/settings.js';
import { badInput } from '../errors.js';
import { describeEndpoint } from '../ssh/endpoint.js';

export type StartOptions = SettingsFlags & { verbose?: boolean; dryRun?: boolean; json?: boolean };

/** One argument as a POSIX shell reads it back: plain words as they are, anything else in single quotes. */
export function shellWord(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`;
}

export async function startCommand(name: string, options: StartOptions): Promise<void> {
  const reporter = terminalReporter({ verbose: options.verbose ?? false });
  const { verbose: _verbose, dryRun: dry, json, ...flags } = options;
  if (json === true && dry !== true) throw badInput('--json goes with --dry-run', 'start --dry-run --json prints the hypervisor command line as JSON; status --json the running builder');
  if (dry === true) {
    const plan = await dryRun(name, flags, reporter);
    console.log(json === true ? JSON.stringify({ driver: plan.driver, argv: plan.argv }) : plan.argv.map(shellWord).join(' '));
    return;
  }
  const result: StartResult = await start(name, flags, reporter);
  const { status } = result;
  if (result.alreadyRunning) {
    console.log(`builder "${name}" is already running (pid ${status.pid}, ssh ${status.ssh ? describeEndpoint(status.ssh) : 'unknown'})`);
    if (result.pendingSettings) console.log('new settings saved; they take effect at the next start');
    return;
  }
  console.log(
    `builder "${name}" is running: booted in ${status.bootSeconds?.toFixed(1)} s (${status.accel}, ${status.cores} cores, ${status.memoryMiB} MiB, ssh ${status.ssh ? describeEndpoint(status.ssh) : 'unknown'}, shares over ${status.shares ?? 'unknown'})`,
  );
}
