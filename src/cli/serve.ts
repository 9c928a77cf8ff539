import { serve } from '../agent/serve.js';
import { terminalReporter } from './output.js';

export async function serveCommand(name: string, options: { listen?: string; idleTimeout?: string; verbose?: boolean }): Promise<void> {
  await serve(name, {
    listen: options.listen,
    idleTimeout: options.idleTimeout,
    reporter: terminalReporter({ verbose: options.verbose ?? false }),
    onListening: (address) => console.log(`agent for builder "${name}" listening on ${address}; events: linux-builder${name === 'default' ? '' : ` --name ${name}`} logs --agent -f`),
  });
  console.log(`agent for builder "${name}" stopped`);
}
