import { start, type StartResult } from '../instance/lifecycle.js';
import { terminalReporter } from './output.js';
import type { SettingsFlags } from '../config/settings.js';
import { describeEndpoint } from '../ssh/endpoint.js';

export type StartOptions = SettingsFlags & { verbose?: boolean };

export async function startCommand(name: string, options: StartOptions): Promise<void> {
  const reporter = terminalReporter({ verbose: options.verbose ?? false });
  const { verbose: _verbose, ...flags } = options;
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
