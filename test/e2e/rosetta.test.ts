/**
 * The guest's side of Rosetta, for real: an aarch64 guest under QEMU gets a share tagged as the
 * Rosetta share, holding Debian's static arm64 qemu-x86_64 as a stand-in for Apple's `rosetta`
 * (LINUX_BUILDER_TEST_ROSETTA_DIR; on QEMU the share goes over the launch's transport, virtio-fs
 * or 9p; on a Mac vfkit's rosetta device is virtio-fs). The guest mounts it at /run/rosetta, registers it in binfmt_misc as Rosetta, and the
 * host's Nix builds x86_64-linux through it in the sandbox (argv[0] kept: busybox applets through
 * symlinks, sh and /proc/self/exe), and i686-linux through qemu-user, which Rosetta cannot run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sandbox } from '../support/cli.js';
import { type BusyboxSystem, staticBusyboxStorePath } from '../support/busybox-static.js';
import { nixEnv, probeNix, runNixBuild, probeLines } from '../support/nix.js';
import { debianGuestUserland } from '../../src/guest/userland.js';
import { elfInterpreter, elfMachine, elfMachines } from '../../src/guest/elf.js';
import { roots } from '../../src/instance/paths.js';

/** Debian's arm64 qemu-x86_64 (static in trixie), copied as `rosetta` into a directory of its own. */
async function rosettaStandIn(): Promise<string> {
  const userland = await debianGuestUserland({ arch: 'aarch64', cacheDir: roots().cache, systems: ['aarch64-linux', 'x86_64-linux', 'i686-linux'] });
  const qemu = join(userland.usr, 'bin', 'qemu-x86_64');
  const elf = readFileSync(qemu);
  assert.equal(elfMachine(elf), elfMachines.aarch64, 'an aarch64 binary, as Apple\'s rosetta is');
  assert.equal(elfInterpreter(elf), undefined, 'static: it runs in the sandbox, where no loader is visible');
  const dir = mkdtempSync(join(tmpdir(), 'lb-rosetta-'));
  copyFileSync(qemu, join(dir, 'rosetta'));
  chmodSync(join(dir, 'rosetta'), 0o755);
  chmodSync(dir, 0o755);
  return dir;
}

test('Rosetta in an aarch64 guest (a stand-in on a share tagged rosetta): binfmt registered as Rosetta, x86_64-linux builds through it in the sandbox, i686-linux through qemu-user', { skip: process.arch !== 'x64' && 'needs an x86_64 host' }, async (t) => {
  const box = sandbox();
  const name = 'rosetta';
  const env = { ...box.env, LINUX_BUILDER_TEST_ROSETTA_DIR: await rosettaStandIn() };
  t.after(async () => {
    await box.run(['--name', name, 'stop', '--force'], { env });
  });

  const started = await box.run(['--name', name, 'start', '--arch', 'aarch64', '--memory', '1G', '--boot-timeout', '10m', '--verbose'], { env, timeoutMs: 20 * 60_000 });
  assert.equal(started.code, 0, started.stderr);
  assert.match(started.stderr, /a stand-in for Rosetta from .* runs x86_64-linux \(LINUX_BUILDER_TEST_ROSETTA_DIR\)/);

  await t.test('the guest mounts the rosetta share at /run/rosetta and registers it for x86_64 ELF with argv[0] kept; no qemu-x86_64 entry; i386 through qemu-user', async () => {
    const guest = await box.run(['--name', name, 'ssh', '--', 'cat /proc/mounts; echo ---; ls /proc/sys/fs/binfmt_misc; echo ---; cat /proc/sys/fs/binfmt_misc/rosetta; echo ---; cat /etc/nix/nix.conf'], { env });
    assert.equal(guest.code, 0, guest.stderr);
    const [mounts = '', entries = '', rosetta = '', conf = ''] = guest.stdout.split('---\n');
    // the guest's /usr is Debian's minimal set (no grep): the lines are picked here
    // over the launch's share transport, as /usr: virtio-fs where a virtiofsd serves, else 9p
    const usrType = /^hostusr \/usr (\S+) /m.exec(mounts)?.[1];
    assert.ok(usrType === '9p' || usrType === 'virtiofs', mounts);
    assert.match(mounts, new RegExp(`^rosetta /run/rosetta ${usrType} ro[, ]`, 'm'));
    const names = entries.split(/\s+/).filter((e) => e !== '');
    assert.ok(names.includes('rosetta'), names.join(' '));
    assert.ok(names.includes('qemu-i386'), names.join(' '));
    assert.ok(!names.includes('qemu-x86_64'), 'x86_64 goes to Rosetta alone');
    assert.match(rosetta, /^enabled$/m);
    assert.match(rosetta, /^interpreter \/run\/rosetta\/rosetta$/m);
    assert.match(rosetta, /^flags: POCF$/m);
    assert.match(rosetta, /^magic 7f454c4602010100000000000000000002003e00$/m);
    assert.match(rosetta, /^mask fffffffffffefe00fffffffffffffffffeffffff$/m);
    assert.match(conf, /^sandbox-paths = \/bin\/sh=\/bb\/busybox \/run\/rosetta$/m);
  });

  const scopeDir = mkdtempSync(join(tmpdir(), 'lb-scope-'));
  const scope = { nixConf: join(scopeDir, 'nix.conf'), sshConfig: join(scopeDir, 'ssh_config') };
  const nix = nixEnv(scope, env);
  const installed = await box.run(['--name', name, 'nix-config', '--install', '--scope', 'user', '--nix-conf', scope.nixConf, '--ssh-config', scope.sshConfig], { env });
  assert.equal(installed.code, 0, installed.stderr);
  const machines = { 'x86_64-linux': 'x86_64', 'i686-linux': 'i686' } as const;
  const nonce = `-rosetta-${process.pid}-${Date.now()}`;
  for (const system of Object.keys(machines) as (keyof typeof machines & BusyboxSystem)[]) {
    await t.test(`${system} builds in the guest's sandbox (${system === 'x86_64-linux' ? 'through Rosetta' : 'through qemu-user'}): argv[0] kept, applets through symlinks and sh`, async () => {
      const result = await runNixBuild(nix, [
        '--max-jobs', '0', '--no-out-link', '--option', 'substituters', '', probeNix,
        '--arg', 'busybox', JSON.stringify(await staticBusyboxStorePath(system)), '--argstr', 'system', system, '--arg', 'port', '9',
        '--argstr', 'outside', '192.0.2.1 9',
        '--argstr', 'hidden', '/nix/store/00000000000000000000000000000000-absent', '--argstr', 'nonce', nonce,
      ]);
      assert.equal(result.code, 0, `${system}: ${result.stderr}`);
      assert.match(result.stderr, /on 'ssh-ng:\/\/root@linux-builder-rosetta'/, 'built in the guest');
      const probe = probeLines(readFileSync(result.stdout.trim(), 'utf8'));
      assert.equal(probe.arch, machines[system]);
      assert.equal(probe.uid, '1000', 'a build user in the sandbox');
      assert.equal(probe.usr, 'absent', 'the sandbox hides /usr');
      assert.equal(probe['symlink-applet'], 'ok');
      assert.equal(probe['sh-applets'], 'ok');
      assert.equal(probe['proc-self-exe'], 'ok', 'argv[0] kept through exec -a');
    });
  }

  await t.test('a failing x86_64-linux build fails through Rosetta, as a build', async () => {
    const failing = await runNixBuild(nix, [
      '--max-jobs', '0', '--no-out-link', '--option', 'substituters', '', '-E',
      `derivation { name = "fails${nonce}"; system = "x86_64-linux"; builder = "\${builtins.storePath ${await staticBusyboxStorePath('x86_64-linux')}}/bin/busybox"; args = [ "sh" "-c" "echo about to fail >&2; exit 3" ]; }`,
    ]);
    assert.notEqual(failing.code, 0);
    assert.match(failing.stderr, /about to fail/);
    assert.match(failing.stderr, /failed with exit code 3/);
  });

  const stopped = await box.run(['--name', name, 'stop'], { env });
  assert.equal(stopped.code, 0, stopped.stderr);
});
