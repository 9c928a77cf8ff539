/**
 * An aarch64 guest on this x86_64 host: `start --arch aarch64` picks Debian's arm64 packages
 * (the host's x86_64 /usr cannot serve it), boots them on qemu-system-aarch64 -machine virt under
 * TCG, and the host's Nix builds aarch64-linux natively and x86_64-linux and i686-linux under the
 * guest's qemu-user, each in Nix's sandbox as a build user.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sandbox } from '../support/cli.js';
import { sharedKernel } from '../support/kernel.js';
import { roots } from '../../src/instance/paths.js';
import { type BusyboxSystem, staticBusyboxStorePath } from '../support/busybox-static.js';
import { nixEnv, probeNix, runNixBuild, probeLines } from '../support/nix.js';

test('--arch aarch64 on an x86_64 host: an emulated aarch64 guest from Debian\'s arm64 packages builds aarch64-linux natively and x86_64-linux and i686-linux under qemu-user', { skip: process.arch !== 'x64' && 'needs an x86_64 host' }, async (t) => {
  const box = sandbox();
  const name = 'aarch64';
  t.after(async () => {
    await box.run(['--name', name, 'stop', '--force']);
  });

  await t.test('--arch aarch64 with --userland host is bad input, and nothing is written', async () => {
    const refused = await box.run(['--name', 'aarch64-host', 'start', '--arch', 'aarch64', '--userland', 'host']);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /^linux-builder: --arch aarch64 cannot use --userland host: the host's \/usr holds x86_64 programs\nhint: use --userland debian/);
    assert.ok(!existsSync(join(box.stateHome, 'linux-builder', 'aarch64-host', 'config.json')), 'no settings remembered');
  });

  // the first start on a machine fetches ~190 MiB of arm64 packages; TCG emulates every instruction
  const started = await box.run(['--name', name, 'start', '--arch', 'aarch64', '--memory', '1G', '--boot-timeout', '10m', '--verbose'], { timeoutMs: 20 * 60_000 });
  assert.equal(started.code, 0, started.stderr);
  assert.match(started.stderr, /the guest is aarch64 and the host x86_64: only TCG emulates another architecture: using TCG/);
  assert.match(started.stderr, /auto: Debian trixie arm64 packages fetched into the cache, because the guest is aarch64/);
  assert.match(started.stderr, /using Debian's kernel .*vmlinuz-.*-arm64/);
  const booted = /booted in ([\d.]+) s/.exec(started.stdout);
  assert.ok(booted, started.stdout);
  t.diagnostic(`aarch64 guest under TCG booted in ${booted[1]} s`);
  const config = JSON.parse(readFileSync(join(box.stateHome, 'linux-builder', name, 'config.json'), 'utf8'));
  assert.equal(config.arch, 'aarch64', 'remembered');

  await t.test('the guest is aarch64, its /usr is the arm64 tree, and binfmt runs x86_64 and i386 through its qemu-user', async () => {
    const guest = await box.run(['--name', name, 'ssh', '--', 'uname -m; /usr/bin/nix-store --version; od -An -tx1 -j18 -N2 /usr/bin/nix-store; cat /proc/sys/fs/binfmt_misc/qemu-x86_64 /proc/sys/fs/binfmt_misc/qemu-i386']);
    assert.equal(guest.code, 0, guest.stderr);
    const [machine, guestNix = '', elfMachine = '', ...binfmt] = guest.stdout.split('\n');
    assert.equal(machine, 'aarch64');
    assert.match(guestNix, /^nix-store \(Nix\) 2\.2\d\./, 'trixie\'s Nix');
    assert.equal(elfMachine.trim(), 'b7 00', '/usr/bin/nix-store is an aarch64 ELF (e_machine 183), not the host\'s x86_64 one');
    assert.match(binfmt.join('\n'), /^interpreter \/usr\/bin\/qemu-x86_64$/m);
    assert.match(binfmt.join('\n'), /^interpreter \/usr\/bin\/qemu-i386$/m);
  });

  await t.test('the store and /usr come over virtio-fs (vhost-user-fs-pci on virt): trixie\'s kernel has it built in', async () => {
    // Debian's tree has no mount(8) on the session's PATH: the kernel's own table
    const mounts = await box.run(['--name', name, 'ssh', '--', 'cat /proc/mounts']);
    assert.equal(mounts.code, 0, mounts.stderr);
    assert.match(mounts.stdout, /^nixstore \/nix\/\.ro-store virtiofs ro[, ]/m);
    assert.match(mounts.stdout, /^hostusr \/usr virtiofs ro[, ]/m);
    const status = JSON.parse((await box.run(['--name', name, 'status', '--json'])).stdout) as { shares: string };
    assert.equal(status.shares, 'virtiofs');
  });

  await t.test('status and doctor say the guest\'s architecture; the machines line leads with aarch64-linux', async () => {
    const json = await box.run(['--name', name, 'status', '--json']);
    const status = JSON.parse(json.stdout) as { arch: string; accel: string; systems: string[]; userland: { kind: string; usr: string; tree?: string } | null };
    assert.equal(status.arch, 'aarch64');
    assert.equal(status.accel, 'tcg');
    assert.deepEqual(status.systems, ['aarch64-linux', 'x86_64-linux', 'i686-linux']);
    assert.equal(status.userland?.kind, 'debian');
    assert.match(status.userland.tree ?? '', /^[0-9a-f]{32}$/);
    assert.ok(status.userland.usr.endsWith(`/debian/trees/${status.userland.tree}/root/usr`), status.userland.usr);
    assert.ok(existsSync(join(status.userland.usr, 'bin', 'nix-store')), 'the tree the guest shares as its /usr');
    const text = await box.run(['--name', name, 'status']);
    assert.match(text.stdout, /^ {2}arch {7}aarch64 \(emulated on this x86_64 host\)$/m);
    assert.match(text.stdout, new RegExp(`^ {2}userland {3}debian: Debian trixie arm64, \\d+ packages, tree ${status.userland.tree}$`, 'm'));
    const doctor = await box.run(['--name', name, 'doctor']);
    assert.match(doctor.stdout, /^✓ arch +aarch64 guest on this x86_64 host/m, doctor.stdout);
    assert.match(doctor.stdout, /^✓ qemu +qemu-system-aarch64$/m, doctor.stdout);
    assert.match(doctor.stdout, /^✓ shares +virtio-fs through \S*virtiofsd /m, doctor.stdout);
    assert.match(doctor.stdout, /^✓ userland +auto: Debian trixie arm64 packages/m, doctor.stdout);
    const printed = await box.run(['--name', name, 'nix-config']);
    assert.match(printed.stdout, /ssh-ng:\/\/root@linux-builder-aarch64 aarch64-linux,x86_64-linux,i686-linux /);
  });

  const scopeDir = mkdtempSync(join(tmpdir(), 'lb-scope-'));
  const scope = { nixConf: join(scopeDir, 'nix.conf'), sshConfig: join(scopeDir, 'ssh_config') };
  const env = nixEnv(scope, box.env);
  const installed = await box.run(['--name', name, 'nix-config', '--install', '--scope', 'user', '--nix-conf', scope.nixConf, '--ssh-config', scope.sshConfig]);
  assert.equal(installed.code, 0, installed.stderr);
  const machines = { 'aarch64-linux': 'aarch64', 'x86_64-linux': 'x86_64', 'i686-linux': 'i686' } as const;
  const nonce = `-aarch64-${process.pid}-${Date.now()}`;
  for (const system of Object.keys(machines) as (keyof typeof machines & BusyboxSystem)[]) {
    await t.test(`${system} builds in the aarch64 guest's sandbox (${system === 'aarch64-linux' ? 'natively' : 'under qemu-user'})`, async () => {
      const busybox = await staticBusyboxStorePath(system);
      const started = Date.now();
      const result = await runNixBuild(env, [
        '--max-jobs', '0', '--no-out-link', '--option', 'substituters', '', probeNix,
        '--arg', 'busybox', JSON.stringify(busybox), '--argstr', 'system', system, '--arg', 'port', '9',
        // a normal derivation has no network: nothing is reached, and nothing waits
        '--argstr', 'outside', '192.0.2.1 9',
        '--argstr', 'hidden', '/nix/store/00000000000000000000000000000000-absent', '--argstr', 'nonce', nonce,
      ]);
      assert.equal(result.code, 0, `${system}: ${result.stderr}`);
      assert.match(result.stderr, /on 'ssh-ng:\/\/root@linux-builder-aarch64'/, 'built in the guest');
      const probe = probeLines(readFileSync(result.stdout.trim(), 'utf8'));
      assert.equal(probe.arch, machines[system]);
      assert.equal(probe.uid, '1000', 'a build user in the sandbox');
      assert.equal(probe.usr, 'absent', 'the sandbox hides /usr');
      assert.equal(probe['proc-self-exe'], 'ok');
      t.diagnostic(`${system}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    });
  }

  const stopped = await box.run(['--name', name, 'stop']);
  assert.equal(stopped.code, 0, stopped.stderr);
});

/** Debian's arm64 kernel from the tree the cache holds (the test above fetched it): its path and version. */
function debianArm64Kernel(): { image: string; version: string } | undefined {
  const trees = join(roots().cache, 'debian', 'trees');
  for (const key of existsSync(trees) ? readdirSync(trees) : []) {
    const boot = join(trees, key, 'root', 'boot');
    const name = existsSync(boot) ? readdirSync(boot).find((file) => /^vmlinuz-.*-arm64$/.test(file)) : undefined;
    if (name !== undefined) return { image: join(boot, name), version: name.slice('vmlinuz-'.length) };
  }
  return undefined;
}

test('--arch aarch64 --kernel: an x86_64 kernel is refused before anything is written; an arm64 Image alone boots with the modules of Debian\'s packages of its version; one of a version Debian has no modules for fails in one line', { skip: process.arch !== 'x64' && 'needs an x86_64 host' }, async (t) => {
  const box = sandbox();
  t.after(async () => {
    await box.run(['--name', 'own-kernel', 'stop', '--force']);
  });
  const x86 = await sharedKernel();
  const refused = await box.run(['--name', 'wrong-kernel', 'start', '--arch', 'aarch64', '--kernel', x86.image]);
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, new RegExp(`^linux-builder: --kernel ${x86.image.replace(/[.+]/g, '\\$&')} is an x86_64 kernel, but the guest is aarch64\nhint: `));
  assert.ok(!existsSync(join(box.stateHome, 'linux-builder', 'wrong-kernel')), 'nothing written');

  const debian = debianArm64Kernel();
  assert.ok(debian, 'the test above fetched Debian\'s arm64 packages');
  const dir = mkdtempSync(join(tmpdir(), 'lb-own-kernel-'));
  // named so that its name says nothing: its version comes from the banner inside
  const image = join(dir, 'Image');
  copyFileSync(debian.image, image);
  const custom = join(dir, 'custom');
  const bytes = readFileSync(debian.image);
  const banner = `Linux version ${debian.version} (`;
  // a version Debian has no modules for, of the same length so the image stays the same size
  const other = debian.version.replace('+deb', '+own');
  assert.notEqual(other, debian.version);
  writeFileSync(custom, Buffer.from(bytes.toString('latin1').replace(banner, `Linux version ${other} (`), 'latin1'));

  const noModules = await box.run(['--name', 'custom-kernel', 'start', '--arch', 'aarch64', '--kernel', custom, '--memory', '1G']);
  assert.equal(noModules.code, 1, noModules.stderr);
  assert.match(noModules.stderr, new RegExp(`^linux-builder: no modules for --kernel ${custom} \\(${other.replace(/[.+]/g, '\\$&')}, aarch64\\) beside it or in Debian's packages\nhint: put them in ${dir}/lib/modules/`, 'm'));

  const started = await box.run(['--name', 'own-kernel', 'start', '--arch', 'aarch64', '--kernel', image, '--memory', '1G', '--boot-timeout', '10m', '--verbose'], { timeoutMs: 20 * 60_000 });
  assert.equal(started.code, 0, started.stderr);
  assert.match(started.stderr, new RegExp(`kernel ${debian.version.replace(/[.+]/g, '\\$&')} \\(flag\\): ${image} \\[image\\]`));
  const uname = await box.run(['--name', 'own-kernel', 'ssh', '--', 'uname -rm; ls /sys/module/overlay >/dev/null && echo modules-loaded']);
  assert.equal(uname.code, 0, uname.stderr);
  assert.equal(uname.stdout.trim(), `${debian.version} aarch64\nmodules-loaded`);
  const stopped = await box.run(['--name', 'own-kernel', 'stop']);
  assert.equal(stopped.code, 0, stopped.stderr);
});
