/**
 * The npm package on its own: packed (which builds dist/), installed globally into an empty
 * prefix from the tarball alone (no checkout, no dev dependencies), then run from elsewhere:
 * --version, --help, doctor, and start → ssh → stop of a real VM; npx runs the same tarball.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { processesMatching, type RunResult } from '../support/cli.js';
import { sharedKernel } from '../support/kernel.js';

const checkout = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const pkg = JSON.parse(readFileSync(join(checkout, 'package.json'), 'utf8')) as { name: string; version: string };

/** npm run by npm test passes its own config down as npm_* variables: the installs here must not see them. */
function withoutNpmConfig(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([key]) => !/^npm_/i.test(key)));
}

function run(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 300_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('the packed tarball, installed into an empty prefix, runs --version, --help, doctor, start, ssh and stop; npx runs it too', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'lb-package-'));
  const runtimeDir = mkdtempSync('/tmp/lbr-'); // short: the QMP socket path must stay under 104 bytes
  const away = join(base, 'elsewhere'); // no checkout above it
  mkdirSync(away);
  const npmEnv = { ...withoutNpmConfig(process.env), npm_config_cache: join(process.env.HOME ?? '/root', '.npm') };
  // Its own state and runtime dirs; the shared kernel cache, so nothing is downloaded again.
  const env = { ...npmEnv, XDG_STATE_HOME: join(base, 'state'), XDG_RUNTIME_DIR: runtimeDir };
  const qmp = join(runtimeDir, 'linux-builder', 'pkg', 'qmp.sock');
  const prefix = join(base, 'prefix');
  const bin = join(prefix, 'bin', 'linux-builder');
  t.after(async () => {
    if (existsSync(bin)) await run(bin, ['--name', 'pkg', 'stop', '--force'], { cwd: away, env });
    rmSync(base, { recursive: true, force: true });
    rmSync(runtimeDir, { recursive: true, force: true });
  });

  // prepack builds dist/ from the sources; the tarball holds no tests, benchmarks or sources.
  const packed = await run('npm', ['pack', '--pack-destination', base], { cwd: checkout, env: npmEnv });
  assert.equal(packed.code, 0, packed.stderr);
  const tarball = join(base, `${pkg.name}-${pkg.version}.tgz`);
  const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).trim().split('\n');
  assert.ok(files.includes('package/dist/cli/main.js'), 'the compiled CLI is in the package');
  assert.ok(files.includes('package/keys/debian-archive-trixie.asc'), 'the archive keys it verifies Debian downloads with');
  for (const script of ['rc.builder', 'collect-garbage', 'nix-daemon', 'init', 'udhcpc']) {
    assert.ok(files.includes(`package/dist/guest/scripts/${script}.sh`), `the guest's ${script}.sh, rendered into every image`);
  }
  const shipped = files.filter((f) => /^package\/(test|bench|src|scripts|docs)\//.test(f) || /\.(ts|map)$/.test(f));
  assert.deepEqual(shipped, [], 'no tests, benchmarks, sources or source maps');

  const installed = await run('npm', ['install', '--global', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: away, env: npmEnv });
  assert.equal(installed.code, 0, installed.stderr);
  const installedDir = join(prefix, 'lib', 'node_modules', pkg.name);
  assert.ok(!existsSync(join(installedDir, 'node_modules', 'typescript')) && !existsSync(join(installedDir, 'node_modules', 'tsx')), 'no dev dependencies');
  assert.deepEqual(readdirSync(installedDir).filter((f) => f !== 'node_modules').sort(), ['README.md', 'bin', 'dist', 'keys', 'package.json']);

  const version = await run(bin, ['--version'], { cwd: away, env });
  assert.equal(version.code, 0, version.stderr);
  assert.equal(version.stdout.trim(), pkg.version, 'the version comes from package.json');

  const help = await run(bin, ['--help'], { cwd: away, env });
  assert.equal(help.code, 0, help.stderr);
  for (const command of ['start', 'stop', 'status', 'ssh', 'nix-config', 'serve', 'service', 'doctor']) assert.match(help.stdout, new RegExp(`^  ${command}\\b`, 'm'));

  const doctor = await run(bin, ['--name', 'pkg', 'doctor'], { cwd: away, env });
  assert.ok(doctor.code === 0 || doctor.code === 1, doctor.stderr);
  assert.match(doctor.stdout, /^✓ qemu +qemu-system-/m);
  assert.match(doctor.stdout, /^✓ busybox +\//m);
  assert.match(doctor.stdout, /^✓ nix +Nix \d/m);
  assert.doesNotMatch(doctor.stdout, /this is a bug in doctor/);
  assert.match(doctor.stdout, /fix: linux-builder --name pkg nix-config --install \(writes /, 'the instance is not registered with Nix yet: the exact command');
  assert.equal(doctor.stderr, '', 'no warnings, no stack trace');

  const kernel = await sharedKernel();
  const started = await run(bin, ['--name', 'pkg', 'start', '--memory', '1G', '--kernel', kernel.image], { cwd: away, env });
  assert.equal(started.code, 0, started.stderr);
  assert.match(started.stdout, /builder "pkg" is running: booted in [\d.]+ s/);
  const uname = await run(bin, ['--name', 'pkg', 'ssh', '--', 'uname', '-m'], { cwd: away, env });
  assert.equal(uname.code, 0, uname.stderr);
  assert.equal(uname.stdout.trim(), execFileSync('uname', ['-m'], { encoding: 'utf8' }).trim());
  const stopped = await run(bin, ['--name', 'pkg', 'stop'], { cwd: away, env });
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.deepEqual(processesMatching(qmp), [], 'no VM left');

  // npx with the tarball: what `npx linux-builder` does with the published package.
  const npx = await run('npx', ['--yes', `--package=${tarball}`, '--', 'linux-builder', '--version'], { cwd: away, env: npmEnv });
  assert.equal(npx.code, 0, npx.stderr);
  assert.equal(npx.stdout.trim(), pkg.version);
});
