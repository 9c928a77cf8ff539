/**
 * The end-to-end smoke the Debian 13 stage runs inside its chroot (test/host/debian-13.test.ts):
 * start a builder, build aarch64-linux, i686-linux and x86_64-linux through it with the host's
 * Nix — `nix-build` and `nix build` — then stop it. Runs on any host the e2e suite runs on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processesMatching, sandbox } from '../support/cli.js';
import { arm64BusyboxStorePath } from '../support/busybox-static.js';
import { nixBuild, nixCommandBuild, nixEnv } from '../support/nix.js';

const systems = [['aarch64', 'aarch64'], ['i686', 'i686'], ['x86_64', 'x86_64']] as const;

test('start, the three systems built with nix-build and nix build through the builder, stop', async (t) => {
  const box = sandbox();
  const name = 'smoke';
  t.after(async () => {
    await box.run(['--name', name, 'stop', '--force']);
  });
  const scopeDir = mkdtempSync(join(tmpdir(), 'lb-scope-'));
  const scope = { nixConf: join(scopeDir, 'nix.conf'), sshConfig: join(scopeDir, 'ssh_config') };
  const env = nixEnv(scope, box.env);
  const busybox = await arm64BusyboxStorePath();

  const started = await box.run(['--name', name, 'start', '--memory', '1G', '--verbose']);
  assert.equal(started.code, 0, started.stderr);
  const kernel = await box.run(['--name', name, 'ssh', '--', 'uname', '-r']);
  assert.equal(kernel.code, 0, kernel.stderr);
  t.diagnostic(`guest kernel ${kernel.stdout.trim()}`);
  const installed = await box.run(['--name', name, 'nix-config', '--install', '--scope', 'user', '--nix-conf', scope.nixConf, '--ssh-config', scope.sshConfig]);
  assert.equal(installed.code, 0, installed.stderr);

  await t.test('nix-build', async () => {
    const nonce = `-nix-build-${Date.now()}`;
    for (const [attr, arch] of systems) {
      const result = await nixBuild(env, [attr], { busybox, nonce });
      assert.equal(result.code, 0, `${attr}: ${result.stderr}`);
      assert.match(result.stderr, /on 'ssh-ng:\/\/root@linux-builder-smoke'/, `${attr} was built remotely`);
      assert.equal(readFileSync(result.stdout.trim(), 'utf8'), `built on ${arch}\n`, attr);
    }
  });

  await t.test('nix build', async () => {
    const nonce = `-nix-build-command-${Date.now()}`;
    for (const [attr, arch] of systems) {
      const result = await nixCommandBuild(env, [attr], { busybox, nonce });
      // --max-jobs 0: nothing builds on the host, so an output means the builder built it
      assert.equal(result.code, 0, `${attr}: ${result.stderr}`);
      assert.equal(readFileSync(result.stdout.trim(), 'utf8'), `built on ${arch}\n`, attr);
    }
  });

  const running = JSON.parse((await box.run(['--name', name, 'status', '--json'])).stdout) as { state: string; stateDir: string };
  assert.equal(running.state, 'running');
  const stopped = await box.run(['--name', name, 'stop']);
  assert.equal(stopped.code, 0, stopped.stderr);
  const status = JSON.parse((await box.run(['--name', name, 'status', '--json'])).stdout) as { state: string };
  assert.equal(status.state, 'stopped');
  assert.deepEqual(processesMatching(running.stateDir), [], 'nothing of the instance is left running');
});
