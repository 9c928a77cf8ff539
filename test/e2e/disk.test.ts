/**
 * The instance disk with the real VM: what the guest builds survives a restart (unless
 * --ephemeral), --disk-size grows the guest's file system and refuses to shrink it, and a build
 * writing twice the guest's RAM succeeds because the store's upper layer is on the disk, and a
 * build that fills the disk fails with Nix's own error while the guest cleans up after it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { nixStoreAdd, sandbox, type Sandbox } from '../support/cli.js';
import { nixEnv, runNixBuild } from '../support/nix.js';

const memory = '512M';

async function ok(box: Sandbox, args: string[]): Promise<string> {
  const result = await box.run(args);
  assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

/** The guest's view of its disk: 1K-blocks of the file system under the store. */
async function guestDiskKiB(box: Sandbox, name: string): Promise<number> {
  const df = await ok(box, ['--name', name, 'ssh', '--', 'df -k /nix/.rw-store']);
  const fields = df.trim().split('\n').at(-1)?.split(/\s+/) ?? [];
  assert.equal(fields[0], '/dev/vda', df);
  return Number(fields[1]);
}

/** How many host paths a `start --verbose` registered in the guest. */
async function startRegistering(box: Sandbox, args: string[]): Promise<number> {
  const result = await box.run(['--name', 'keep', 'start', '--verbose', ...args]);
  assert.equal(result.code, 0, result.stderr);
  const count = /registered (\d+) host store paths/.exec(result.stderr)?.[1];
  assert.ok(count !== undefined, result.stderr);
  return Number(count);
}

test('a restart keeps what the guest built and registers only the host paths gained since; --ephemeral wipes it at every start', async (t) => {
  const box = sandbox();
  t.after(async () => {
    await box.run(['--name', 'keep', 'stop', '--force']);
  });
  const dir = mkdtempSync(join(tmpdir(), 'lb-keep-'));
  const hostPath = (label: string): string => {
    writeFileSync(join(dir, label), `${label} ${process.pid} ${Date.now()}\n`);
    return nixStoreAdd(join(dir, label));
  };
  const before = hostPath('before');
  const all = await startRegistering(box, ['--memory', memory, '--disk-size', '4G']);
  assert.ok(all > 0);
  const status = JSON.parse(await ok(box, ['--name', 'keep', 'status', '--json']));
  assert.equal(status.disk.path, join(box.stateHome, 'linux-builder', 'keep', 'disk.img'));
  assert.equal(status.disk.sizeMiB, 4096);
  assert.ok(status.disk.allocatedMiB < 512, `sparse: ${status.disk.allocatedMiB} MiB allocated`);
  assert.equal(statSync(status.disk.path).mode & 0o777, 0o600);

  const nonce = `${process.pid}-${Date.now()}`;
  const added = await ok(box, ['--name', 'keep', 'ssh', '--', `echo ${nonce} > /tmp/kept && nix-store --add /tmp/kept`]);
  const path = added.trim();
  assert.match(path, /^\/nix\/store\/[0-9a-z]{32}-kept$/);

  await ok(box, ['--name', 'keep', 'stop']);
  const gained = hostPath('gained-while-stopped');
  const again = await startRegistering(box, []);
  assert.ok(again >= 1 && again < all, `the restart registered ${again} of ${all}`);
  await ok(box, ['--name', 'keep', 'ssh', '--', `nix-store --check-validity ${path} ${before} ${gained}`]);
  assert.equal(await ok(box, ['--name', 'keep', 'ssh', '--', `cat ${path}`]), `${nonce}\n`);

  await ok(box, ['--name', 'keep', 'stop']);
  assert.ok((await startRegistering(box, ['--ephemeral'])) >= all, 'an empty disk is told everything again');
  const gone = await box.run(['--name', 'keep', 'ssh', '--', `nix-store --check-validity ${path}`]);
  assert.notEqual(gone.code, 0, 'the ephemeral disk starts empty');
  assert.match(gone.stderr, /is not valid/);
  const config = JSON.parse(readFileSync(join(box.stateHome, 'linux-builder', 'keep', 'config.json'), 'utf8'));
  assert.equal(config.ephemeral, true, '--ephemeral is remembered');
});

test('a bigger --disk-size grows the guest file system at the next start; a smaller one is refused, nothing written', async (t) => {
  const box = sandbox();
  const dir = join(box.stateHome, 'linux-builder', 'grow');
  t.after(async () => {
    await box.run(['--name', 'grow', 'stop', '--force']);
  });
  await ok(box, ['--name', 'grow', 'start', '--memory', memory, '--disk-size', '4G']);
  const before = await guestDiskKiB(box, 'grow');
  await ok(box, ['--name', 'grow', 'stop']);

  const config = readFileSync(join(dir, 'config.json'), 'utf8');
  const shrink = await box.run(['--name', 'grow', 'start', '--disk-size', '2G']);
  assert.equal(shrink.code, 2, shrink.stderr);
  assert.match(shrink.stderr, /^linux-builder: --disk-size 2G is smaller than the instance disk \(4G\)/m);
  assert.match(shrink.stderr, /^hint: /m);
  assert.equal(readFileSync(join(dir, 'config.json'), 'utf8'), config, 'settings untouched');
  assert.equal(statSync(join(dir, 'disk.img')).size, 4 * 1024 ** 3, 'disk untouched');

  await ok(box, ['--name', 'grow', 'start', '--disk-size', '6G']);
  const after = await guestDiskKiB(box, 'grow');
  assert.ok(after > before * 1.4, `the file system grew: ${before} KiB → ${after} KiB`);
  const status = JSON.parse(await ok(box, ['--name', 'grow', 'status', '--json']));
  assert.equal(status.disk.sizeMiB, 6144);
});

test('a build writing twice the guest RAM succeeds: the store and build dirs are on the disk', async (t) => {
  const box = sandbox();
  t.after(async () => {
    await box.run(['--name', 'big', 'stop', '--force']);
  });
  // The expression reaches the guest through the host store (registered at start); the build runs in the guest alone.
  const dir = mkdtempSync(join(tmpdir(), 'lb-disk-'));
  const file = join(dir, 'big.nix');
  writeFileSync(
    file,
    [
      '{ nonce }:',
      'derivation {',
      '  name = "big-${nonce}";',
      '  system = "x86_64-linux";',
      '  builder = "/bin/sh";',
      '  args = [ "-c" "dd if=/dev/zero of=$out bs=1M count=1100" ];',
      '}',
      '',
    ].join('\n'),
  );
  const expression = nixStoreAdd(file);
  await ok(box, ['--name', 'big', 'start', '--memory', memory, '--disk-size', '4G']);
  const started = Date.now();
  const built = await box.run(
    ['--name', 'big', 'ssh', '--', `nix-build --no-out-link ${expression} --argstr nonce ${process.pid}-${Date.now()}`],
    { timeoutMs: 600_000 },
  );
  assert.equal(built.code, 0, built.stderr);
  const out = built.stdout.trim().split('\n').at(-1) ?? '';
  assert.match(out, /^\/nix\/store\/[0-9a-z]{32}-big-/);
  t.diagnostic(`1100 MiB built in the guest (512 MiB RAM) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const size = await ok(box, ['--name', 'big', 'ssh', '--', `stat -c %s ${out}`]);
  assert.equal(Number(size.trim()), 1100 * 1024 * 1024);
  assert.equal(await ok(box, ['--name', 'big', 'ssh', '--', 'echo usable']), 'usable\n');
});

/** Free bytes the guest sees on its disk. */
async function guestFreeBytes(box: Sandbox, name: string): Promise<number> {
  const df = await ok(box, ['--name', name, 'ssh', '--', 'df -Pk /nix/.rw-store']);
  return Number(df.trim().split('\n').at(-1)?.split(/\s+/)[3]) * 1024;
}

test('a build that fills the disk fails with Nix\'s own error; the guest collects its output by itself and the next build has room', async (t) => {
  const box = sandbox();
  const name = 'full';
  t.after(async () => {
    await box.run(['--name', name, 'stop', '--force']);
  });
  const dir = mkdtempSync(join(tmpdir(), 'lb-full-'));
  const scope = { nixConf: join(dir, 'nix.conf'), sshConfig: join(dir, 'ssh_config') };
  // Preallocated 64 MiB files until the disk refuses one, then dd into what is left: full in seconds.
  // Builds run in the sandbox, where /bin/sh is the guest's busybox: applets, no host /usr.
  const fill = 'mkdir $out; i=0; while fallocate -l 64M $out/f$i; do i=$((i + 1)); done; dd if=/dev/zero of=$out/last bs=1M';
  const write = (mib: number) => `dd if=/dev/zero of=$out bs=1M count=${mib}`;
  const file = join(dir, 'full.nix');
  writeFileSync(
    file,
    [
      '{ nonce, script }:',
      'derivation {',
      '  name = "disk-${nonce}";',
      '  system = "x86_64-linux";',
      '  builder = "/bin/sh";',
      '  args = [ "-c" script ];',
      '}',
      '',
    ].join('\n'),
  );
  await ok(box, ['--name', name, 'start', '--memory', memory, '--disk-size', '1G']);
  await ok(box, ['--name', name, 'nix-config', '--install', '--scope', 'user', '--nix-conf', scope.nixConf, '--ssh-config', scope.sshConfig]);
  const env = nixEnv(scope, box.env);
  const build = (nonce: string, script: string) =>
    runNixBuild(env, ['--max-jobs', '0', '--no-out-link', '--option', 'substituters', '', file, '--argstr', 'nonce', nonce, '--argstr', 'script', script]);
  const nonce = `${process.pid}-${Date.now()}`;

  for (const round of [1, 2]) {
    const full = await build(`fill-${round}-${nonce}`, fill);
    assert.notEqual(full.code, 0, 'the build that fills the disk fails');
    assert.match(full.stderr, /No space left on device/, full.stderr);
    assert.match(full.stderr, /build failure may have been caused by lack of free disk space/, full.stderr);
    assert.ok((await guestFreeBytes(box, name)) < 64 * 1024 * 1024, 'the disk was full');

    // Right after the failure, before anyone collects: a small build as a build user works.
    const right = await build(`right-after-${round}-${nonce}`, 'echo small > $out');
    assert.equal(right.code, 0, `the build right after a full disk: ${right.stderr}`);

    // The guest's collector notices within seconds; no one logs in to clean up.
    const started = Date.now();
    let free = 0;
    while ((free = await guestFreeBytes(box, name)) < 400 * 1024 * 1024) {
      assert.ok(Date.now() - started < 300_000, `still ${free} bytes free after 5 minutes`);
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
    t.diagnostic(`round ${round}: ${Math.round(free / 1024 / 1024)} MiB free again ${((Date.now() - started) / 1000).toFixed(1)} s after the failed build`);

    const next = await build(`next-${round}-${nonce}`, write(200));
    assert.equal(next.code, 0, next.stderr);
  }
  const log = await ok(box, ['--name', name, 'ssh', '--', 'cat /run/gc.log']);
  assert.match(log, new RegExp(`deleting '/nix/store/[0-9a-z]{32}-disk-fill-1-${nonce}'`), log);
  assert.doesNotMatch(log, /No space left|error:/, log);
  assert.equal(await ok(box, ['--name', name, 'ssh', '--', 'nix-store --verify 2>&1 | grep -c error || true']), '0\n', 'the guest\'s Nix database is sound');
});
