/**
 * The host's real Nix builds through the builder: nix-config --install into a temporary scope,
 * then aarch64-linux (Debian's arm64 busybox under qemu-user), i686-linux and x86_64-linux
 * derivations, with --max-jobs 0 so nothing builds on the host.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processesMatching, sandbox } from '../support/cli.js';
import { arm64BusyboxStorePath } from '../support/busybox-static.js';
import { copiedToBuilder, nixBuild, nixBuildInputs, nixEnv } from '../support/nix.js';
import { addRandomFiles } from '../support/store.js';

test('nix-config --install makes the host\'s Nix build aarch64, i686 and x86_64 in the guest; --uninstall restores the files', async (t) => {
  const box = sandbox();
  const name = 'nix';
  t.after(async () => {
    await box.run(['--name', name, 'stop', '--force']);
  });
  const scopeDir = mkdtempSync(join(tmpdir(), 'lb-scope-'));
  const scope = { nixConf: join(scopeDir, 'nix.conf'), sshConfig: join(scopeDir, 'ssh_config') };
  // What the user had: their own settings, no trailing newline in one of them.
  const userNixConf = 'keep-outputs = true\n# a comment\n';
  const userSshConfig = 'Host example\n  User someone';
  writeFileSync(scope.nixConf, userNixConf);
  writeFileSync(scope.sshConfig, userSshConfig);
  const env = nixEnv(scope, box.env);
  const busybox = await arm64BusyboxStorePath();
  // Inputs the host has before the builder boots: several paths, a few MB.
  const inputs = addRandomFiles(4, 1 << 20, 'boot-input');

  const started = await box.run(['--name', name, 'start', '--memory', '1G']);
  assert.equal(started.code, 0, started.stderr);
  const status = JSON.parse((await box.run(['--name', name, 'status', '--json'])).stdout);
  assert.deepEqual(status.systems, ['x86_64-linux', 'i686-linux', 'aarch64-linux']);

  const before = await box.run(['--name', name, 'doctor'], { env });
  assert.equal(before.code, 1, before.stdout);
  assert.match(before.stdout, /^✗ nix config .*do not include/m);
  assert.match(before.stdout, /fix: linux-builder --name nix nix-config --install/);

  const installArgs = ['--name', name, 'nix-config', '--install', '--scope', 'user', '--nix-conf', scope.nixConf, '--ssh-config', scope.sshConfig];
  const installed = await box.run(installArgs);
  assert.equal(installed.code, 0, installed.stderr);
  const afterOnce = [readFileSync(scope.nixConf, 'utf8'), readFileSync(scope.sshConfig, 'utf8')];
  assert.match(afterOnce[0] ?? '', /^keep-outputs = true\n# a comment\n# BEGIN linux-builder nix .*\nbuilders = .*@.*\/machines\nbuilders-use-substitutes = true\n# END linux-builder nix\n$/);
  assert.match(afterOnce[1] ?? '', /^# BEGIN linux-builder nix .*\nHost linux-builder-nix\n[^]*HostKeyAlias linux-builder-nix\n[^]*# END linux-builder nix\nHost example\n {2}User someone$/);
  const doctor = await box.run(['--name', name, 'doctor'], { env });
  assert.match(doctor.stdout, /^✓ nix config /m, doctor.stdout);
  assert.match(doctor.stdout, /^✓ ssh config .*host key pinned/m, doctor.stdout);
  assert.match(doctor.stdout, /^✓ instance +running/m, doctor.stdout);

  const again = await box.run(installArgs);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual([readFileSync(scope.nixConf, 'utf8'), readFileSync(scope.sshConfig, 'utf8')], afterOnce, 'installing twice is installing once');

  await t.test('each system builds in the guest and reports its architecture', async () => {
    const nonce = `-${Date.now()}`;
    for (const [attr, arch] of [['aarch64', 'aarch64'], ['i686', 'i686'], ['x86_64', 'x86_64']] as const) {
      const result = await nixBuild(env, [attr], { busybox, nonce });
      assert.equal(result.code, 0, `${attr}: ${result.stderr}`);
      assert.match(result.stderr, /on 'ssh-ng:\/\/root@linux-builder-nix'/, `${attr} was built remotely`);
      const out = result.stdout.trim();
      assert.equal(readFileSync(out, 'utf8'), `built on ${arch}\n`, attr);
    }
  });

  await t.test('inputs already in the host store build with 0 paths copied to the guest', async () => {
    const result = await nixBuildInputs(env, { busybox, inputs, nonce: `-zero-copy-${Date.now()}` });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(copiedToBuilder(result.stderr), [], result.stderr);
    assert.match(result.stderr, /copying 0 paths/);
    assert.equal(readFileSync(result.stdout.trim(), 'utf8'), '1048576\n'.repeat(4));
  });

  await t.test('two derivations of different systems build in one nix-build run', async () => {
    const result = await nixBuild(env, ['aarch64', 'i686'], { busybox, nonce: `-both-${Date.now()}` });
    assert.equal(result.code, 0, result.stderr);
    const outputs = result.stdout.trim().split('\n').map((p) => readFileSync(p, 'utf8'));
    assert.deepEqual(outputs.sort(), ['built on aarch64\n', 'built on i686\n']);
  });

  await t.test('without HostKeyAlias the pinned host key never matches and the build fails', async () => {
    const noAlias = join(scopeDir, 'ssh_config-no-alias');
    // Also no shared connection: the one already open was authenticated with the alias.
    const text = readFileSync(scope.sshConfig, 'utf8').replace(/^\s*HostKeyAlias .*\n/m, '').replace(/^\s*ControlMaster .*$/m, '  ControlMaster no\n  ControlPath none');
    writeFileSync(noAlias, text);
    const result = await nixBuild({ ...env, NIX_SSHOPTS: `-F ${noAlias}` }, ['aarch64'], { busybox, nonce: `-noalias-${Date.now()}` });
    assert.notEqual(result.code, 0, 'the build must not succeed against an unpinned key');
    assert.doesNotMatch(text, /HostKeyAlias/);
  });

  const uninstalled = await box.run(['--name', name, 'nix-config', '--uninstall']);
  assert.equal(uninstalled.code, 0, uninstalled.stderr);
  assert.equal(readFileSync(scope.nixConf, 'utf8'), userNixConf, 'nix.conf byte-identical');
  assert.equal(readFileSync(scope.sshConfig, 'utf8'), userSshConfig, 'ssh_config byte-identical');

  const stopped = await box.run(['--name', name, 'stop']);
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.deepEqual(processesMatching(join(box.runtimeDir, 'linux-builder', name)), [], 'no VM and no shared ssh connection left');
  assert.ok(!existsSync(join(box.runtimeDir, 'linux-builder', name, 'ssh')));
});

test('install into files that do not exist yet, then uninstall, leaves no file behind', async () => {
  const box = sandbox();
  const scopeDir = mkdtempSync(join(tmpdir(), 'lb-scope-'));
  const nixConf = join(scopeDir, 'nix', 'nix.conf');
  const sshConfig = join(scopeDir, 'ssh', 'config');
  const args = ['--name', 'fresh', 'nix-config', '--scope', 'user', '--nix-conf', nixConf, '--ssh-config', sshConfig];
  const env = { ...box.env, NIX_USER_CONF_FILES: nixConf };
  const { runCli } = await import('../support/cli.js');
  const installed = await runCli([...args, '--install'], env, 60_000);
  assert.equal(installed.code, 0, installed.stderr);
  assert.ok(existsSync(nixConf) && existsSync(sshConfig));
  const removed = await runCli(['--name', 'fresh', 'nix-config', '--uninstall'], env, 60_000);
  assert.equal(removed.code, 0, removed.stderr);
  assert.ok(!existsSync(nixConf) && !existsSync(sshConfig));
});

test('unknown systems and missing emulators are bad input naming what to do', async () => {
  const box = sandbox();
  const unknown = await box.run(['--name', 'sys', 'start', '--systems', 'x86_64-linux,sparc-solaris']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown system "sparc-solaris"/);
  assert.match(unknown.stderr, /^hint: known systems: .*aarch64-linux/m);
});
