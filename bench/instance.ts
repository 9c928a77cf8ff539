/** Reads a benchmark instance's state.json (what kernel it booted, with how many cores). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export function runState(env: NodeJS.ProcessEnv, name: string): { kernel: string; cores: number } {
  const root = join(env.XDG_STATE_HOME ?? '', 'linux-builder', name);
  const state = JSON.parse(readFileSync(join(root, 'state.json'), 'utf8')) as { kernel: string; cores: number };
  return state;
}
