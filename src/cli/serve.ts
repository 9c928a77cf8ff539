import { serve } from '../agent/serve.js';
import type { SettingsFlags } from '../config/settings.js';
import { terminalReporter } from './output.js';

export type ServeCommandOptions = SettingsFlags & { listen?: string; idleTimeout?: string; verbose?: boolean };

export async function serveCommand(name: string, options: ServeCommandOptions): Promise<void> {
  const { listen, idleTimeout, verbose, ...settings } = options;
  await serve(name, {
    listen,
    idleTimeout,
    settings,
    reporter: terminalReporter({ verbose: verbose ?? false }),
    onListening: (address) => console.log(`agent for builder "${name}" listening on ${address}; events: linux-builder${name === 'default' ? '' : ` --name ${name}`} logs --agent -f`),
  });
  console.log(`agent for builder "${name}" stopped`);
}
