/**
 * The main job, end to end: start a builder, show it, build an aarch64-linux derivation through
 * it with the host's Nix, stop it. Runs the real CLI and the real nix-build, so what it prints is
 * what a user sees. The Nix and ssh config go into a scratch scope, not the host's own files.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { arm64BusyboxStorePath } from '../test/support/busybox-static.js';
import { helloNix } from '../test/support/nix.js';

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'linux-builder.js');
const name = process.env.LINUX_BUILDER_DEMO_NAME ?? 'demo';
const scratch = mkdtempSync(join(tmpdir(), 'linux-builder-demo-'));
const scope = { nixConf: join(scratch, 'nix.conf'), sshConfig: join(scratch, 'ssh_config') };
const env = { ...process.env, NIX_USER_CONF_FILES: scope.nixConf, NIX_SSHOPTS: `-F ${scope.sshConfig}` };

const shown = (arg: string): string => (arg === '' ? "''" : /[\s"]/.test(arg) ? `'${arg}'` : arg);

function run(title: string, command: string, args: string[], options: { capture?: boolean; display?: string } = {}): string {
  process.stdout.write(`\n# ${title}\n$ ${options.display ?? [command, ...args].map(shown).join(' ')}\n`);
  const started = Date.now();
  const result = spawnSync(command, args, { env, stdio: ['ignore', options.capture ? 'pipe' : 'inherit', 'inherit'], encoding: 'utf8' });
  if (options.capture) process.stdout.write(result.stdout);
  process.stdout.write(`  (${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
  if (result.status !== 0) {
    cleanUp();
    process.exit(result.status ?? 1);
  }
  return result.stdout ?? '';
}

function lb(title: string, args: string[], options: { capture?: boolean } = {}): string {
  return run(title, process.execPath, [cli, '--name', name, ...args], { ...options, display: ['linux-builder', '--name', name, ...args].map(shown).join(' ') });
}

function cleanUp(): void {
  spawnSync(process.execPath, [cli, '--name', name, 'nix-config', '--uninstall'], { env, stdio: 'ignore' });
  spawnSync(process.execPath, [cli, '--name', name, 'stop'], { env, stdio: 'inherit' });
  rmSync(scratch, { recursive: true, force: true });
}

const busybox = await arm64BusyboxStorePath();
lb('boot the builder VM and wait until SSH works', ['start', '--verbose']);
lb('what is running', ['status']);
lb('run a command in the guest', ['ssh', '--', 'uname', '-m']);
lb('register it with Nix (a scratch scope here; for real use drop the file options)', [
  'nix-config', '--install', '--scope', 'user', '--nix-conf', scope.nixConf, '--ssh-config', scope.sshConfig,
]);
const out = run('build an aarch64-linux derivation through the builder (Debian\'s arm64 busybox, under qemu-user in the guest)', 'nix-build', [
  '--max-jobs', '0', '--no-out-link', '--option', 'substituters', '',
  helloNix, '-A', 'aarch64', '--arg', 'busybox', JSON.stringify(busybox), '--argstr', 'nonce', `-${Date.now()}`,
], { capture: true });
process.stdout.write(`\n${out.trim()} says: ${readFileSync(out.trim(), 'utf8')}`);
lb('unregister it', ['nix-config', '--uninstall']);
lb('power it off', ['stop']);
rmSync(scratch, { recursive: true, force: true });
