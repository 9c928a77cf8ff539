import { stop } from '../instance/lifecycle.js';
import { terminalReporter } from './output.js';

export async function stopCommand(name: string, options: { force?: boolean; verbose?: boolean }): Promise<void> {
  const result = await stop(name, { force: options.force ?? false }, terminalReporter({ verbose: options.verbose ?? false }));
  if (!result.wasRunning) console.log(`builder "${name}" is not running`);
  else console.log(`builder "${name}" stopped${result.graceful ? '' : ' (killed)'}`);
}
