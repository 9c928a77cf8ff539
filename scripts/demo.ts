/**
 * The main job, end to end: start a builder, show its status, run a command in it, stop it.
 * Runs the real CLI, so what it prints is what a user sees.
 */
import { spawnSync } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'linux-builder.js');
const name = process.env.LINUX_BUILDER_DEMO_NAME ?? 'demo';

function step(title: string, args: string[]): void {
  process.stdout.write(`\n$ linux-builder ${args.join(' ')}    # ${title}\n`);
  const started = Date.now();
  const result = spawnSync(process.execPath, [cli, '--name', name, ...args], { stdio: 'inherit' });
  process.stdout.write(`  (${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
  if (result.status !== 0) {
    spawnSync(process.execPath, [cli, '--name', name, 'stop', '--force'], { stdio: 'inherit' });
    process.exit(result.status ?? 1);
  }
}

step('boot the builder VM and wait until SSH works', ['start', '--verbose']);
step('what is running', ['status']);
step('run a command in the guest', ['ssh', '--', 'uname', '-m']);
step('power it off', ['stop']);
