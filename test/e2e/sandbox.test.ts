/**
 * Builds through the builder are as sealed and as faithful as on a NixOS builder: the host's
 * real Nix builds, for each system, a derivation whose builder is that system's static busybox;
 * it runs applets by name (argv[0] kept under qemu-user), as a build user in Nix's sandbox,
 * without the host's /usr, other store paths, the network or the host's loopback. A
 * fixed-output derivation has the network, but not the host's loopback either.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { sandbox } from '../support/cli.js';
import { type BusyboxSystem, staticBusyboxStorePath } from '../support/busybox-static.js';
import { nixEnv, probeNix, runNixBuild } from '../support/nix.js';
import { addRandomFiles } from '../support/store.js';

/** A listener that counts the connections it gets. */
async function listener(host: string): Promise<{ server: Server; port: number; connections: () => number }> {
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    socket.end(`linux-builder-test: you reached ${host}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const address = server.address();
  assert.ok(address && typeof address === 'object');
  return { server, port: address.port, connections: () => connections };
}

/** This machine's own non-loopback IPv4 address: beyond the guest, reached through QEMU's NAT. */
function hostAddress(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address;
}

/** "key=value" lines → an object. */
function probeLines(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split('\n')
      .map((line) => /^([a-z-]+)=(.*)$/.exec(line.trim()))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1] ?? '', m[2] ?? '']),
  );
}

const sealed = {
  uid: '1000',
  // the daemon that runs it loaded at the lowest priority, as a spare; the build runs at the usual one
  nice: '0',
  usr: 'absent',
  'other-paths': 'hidden',
  'symlink-applet': 'ok',
  'sh-applets': 'ok',
  'proc-self-exe': 'ok',
  'host-loopback': 'unreachable',
};

test('each system builds in the sandbox as a build user: applets by name, no host /usr, no other store paths, no network, no host loopback', async (t) => {
  const box = sandbox();
  const name = 'sealed';
  const address = hostAddress();
  if (address === undefined) return t.skip('this machine has no non-loopback IPv4 address to stand for the outside');
  const loopback = await listener('127.0.0.1');
  const outside = await listener(address);
  t.after(async () => {
    loopback.server.close();
    outside.server.close();
    await box.run(['--name', name, 'stop', '--force']);
  });
  const scopeDir = mkdtempSync(join(tmpdir(), 'lb-scope-'));
  const scope = { nixConf: join(scopeDir, 'nix.conf'), sshConfig: join(scopeDir, 'ssh_config') };
  const env = nixEnv(scope, box.env);
  const machines: Record<BusyboxSystem, string> = { 'x86_64-linux': 'x86_64', 'i686-linux': 'i686', 'aarch64-linux': 'aarch64', 'armv7l-linux': 'armv7l' };
  const systems = Object.keys(machines) as BusyboxSystem[];
  const busybox = Object.fromEntries(await Promise.all(systems.map(async (s) => [s, await staticBusyboxStorePath(s)]))) as Record<BusyboxSystem, string>;
  // A host path that is no input of the build, made just before it.
  const [hidden = ''] = addRandomFiles(1, 4096, 'not-an-input');

  const started = await box.run(['--name', name, 'start', '--memory', '1G', '--systems', systems.join(',')]);
  assert.equal(started.code, 0, started.stderr);
  const installed = await box.run(['--name', name, 'nix-config', '--install', '--scope', 'user', '--nix-conf', scope.nixConf, '--ssh-config', scope.sshConfig]);
  assert.equal(installed.code, 0, installed.stderr);
  const nonce = `-${process.pid}-${Date.now()}`;
  const build = (system: BusyboxSystem, extra: string[] = []) =>
    runNixBuild(env, [
      '--max-jobs', '0', '--no-out-link', '--option', 'substituters', '', probeNix,
      '--arg', 'busybox', JSON.stringify(busybox[system]), '--argstr', 'system', system, '--arg', 'port', String(loopback.port), '--argstr', 'outside', `${address} ${outside.port}`,
      '--argstr', 'hidden', hidden, '--argstr', 'nonce', nonce, ...extra,
    ]);

  for (const system of systems) {
    await t.test(`${system}: sealed and faithful`, async () => {
      const result = await build(system);
      assert.equal(result.code, 0, `${system}: ${result.stderr}`);
      assert.match(result.stderr, /on 'ssh-ng:\/\/root@linux-builder-sealed'/, 'built in the guest');
      const probe = probeLines(readFileSync(result.stdout.trim(), 'utf8'));
      assert.deepEqual(probe, { ...sealed, arch: machines[system], outside: 'unreachable' }, readFileSync(result.stdout.trim(), 'utf8'));
      assert.equal(outside.connections(), 0, 'a normal derivation has no network');
    });
  }

  await t.test('a fixed-output derivation keeps the network but cannot reach the host\'s loopback; it still builds', async () => {
    const fixed = `sha256-${createHash('sha256').update('fixed\n').digest('base64')}`;
    for (const system of ['aarch64-linux', 'x86_64-linux'] as const) {
      const result = await build(system, ['--argstr', 'fixed', fixed]);
      assert.equal(result.code, 0, `${system}: ${result.stderr}`);
      assert.equal(readFileSync(result.stdout.trim(), 'utf8'), 'fixed\n');
      const probe = probeLines(result.stderr);
      assert.deepEqual(probe, { ...sealed, arch: machines[system], outside: 'reached' }, result.stderr);
    }
    assert.equal(outside.connections(), 2, 'each fixed-output build reached the outside listener, no other build did');
  });

  await t.test('a failing build fails with Nix\'s own error, and the next build works', async () => {
    const wrong = await build('aarch64-linux', ['--argstr', 'fixed', `sha256-${Buffer.alloc(32).toString('base64')}`]);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /hash mismatch in fixed-output derivation/, wrong.stderr);
    const next = await runNixBuild(env, [
      '--max-jobs', '0', '--no-out-link', '--option', 'substituters', '', probeNix, '--arg', 'busybox', JSON.stringify(busybox['aarch64-linux']),
      '--argstr', 'system', 'aarch64-linux', '--arg', 'port', String(loopback.port), '--argstr', 'outside', `${address} ${outside.port}`,
      '--argstr', 'hidden', hidden, '--argstr', 'nonce', `${nonce}-after-failure`,
    ]);
    assert.equal(next.code, 0, next.stderr);
    assert.equal(probeLines(readFileSync(next.stdout.trim(), 'utf8')).arch, 'aarch64');
  });

  assert.equal(loopback.connections(), 0, 'no build connected to the host\'s loopback');
  // The product's own traffic still flows: a command over SSH, and a registration at the next build.
  const ssh = await box.run(['--name', name, 'ssh', '--', 'echo still-reachable']);
  assert.equal(ssh.stdout, 'still-reachable\n', ssh.stderr);
});
