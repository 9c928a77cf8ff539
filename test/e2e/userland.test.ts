/**
 * A guest whose /usr is Debian's packages, not the host's: `start --userland debian` fetches
 * trixie's kernel, busybox, sshd, Nix and qemu-user into the cache (once per machine), boots
 * from them, and the host's Nix builds the three default systems through it, each in Nix's
 * sandbox as a build user.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sandbox } from '../support/cli.js';
import { type BusyboxSystem, staticBusyboxStorePath } from '../support/busybox-static.js';
import { nixEnv, probeNix, runNixBuild, probeLines } from '../support/nix.js';

async function loopbackListener(): Promise<{ server: Server; port: number; connections: () => number }> {
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    socket.end('linux-builder-test: you reached the host\'s loopback\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address && typeof address === 'object');
  return { server, port: address.port, connections: () => connections };
}

test('--userland debian: the guest runs Debian\'s Nix from the fetched tree and builds the three default systems in its sandbox', async (t) => {
  const box = sandbox();
  const name = 'debian';
  const listener = await loopbackListener();
  t.after(async () => {
    listener.server.close();
    await box.run(['--name', name, 'stop', '--force']);
  });
  const scopeDir = mkdtempSync(join(tmpdir(), 'lb-scope-'));
  const scope = { nixConf: join(scopeDir, 'nix.conf'), sshConfig: join(scopeDir, 'ssh_config') };
  const env = nixEnv(scope, box.env);
  const machines = { 'x86_64-linux': 'x86_64', 'i686-linux': 'i686', 'aarch64-linux': 'aarch64' } as const;
  const systems = Object.keys(machines) as (keyof typeof machines & BusyboxSystem)[];
  const busybox = Object.fromEntries(await Promise.all(systems.map(async (s) => [s, await staticBusyboxStorePath(s)]))) as Record<string, string>;

  // the first start on a machine fetches ~210 MiB from the Debian mirror
  const started = await box.run(['--name', name, 'start', '--memory', '1G', '--userland', 'debian', '--verbose'], { timeoutMs: 15 * 60_000 });
  assert.equal(started.code, 0, started.stderr);
  assert.match(started.stderr, /using Debian's kernel .*vmlinuz-/, started.stderr);
  const config = JSON.parse(readFileSync(join(box.stateHome, 'linux-builder', name, 'config.json'), 'utf8'));
  assert.equal(config.userland, 'debian', 'remembered');

  await t.test('/usr is the Debian tree: its own Nix, loader and libraries, not the host\'s', async () => {
    const guest = await box.run(['--name', name, 'ssh', '--', 'nix-store --version; cat /proc/sys/fs/binfmt_misc/qemu-aarch64; uname -r']);
    assert.equal(guest.code, 0, guest.stderr);
    const [guestNix = '', ...rest] = guest.stdout.split('\n');
    assert.match(guestNix, /^nix-store \(Nix\) 2\.2\d\./, guest.stdout);
    // Not a version compared with the host's (a Debian 13 host has the same Nix): the share QEMU serves as /usr.
    // (over virtio-fs the share is a virtiofsd's, not on QEMU's command line: status says what was launched)
    const usr = (JSON.parse((await box.run(['--name', name, 'status', '--json'])).stdout) as { userland?: { usr?: string } }).userland?.usr;
    assert.ok(usr !== undefined && usr !== '/usr' && existsSync(join(usr, 'bin', 'nix-store')), `the guest's /usr is the fetched tree: ${usr}`);
    assert.match(rest.join('\n'), /^interpreter \/usr\/bin\/qemu-aarch64$/m, 'binfmt names the tree\'s emulator');
    assert.match(rest.join('\n'), /\+deb13-/, 'Debian trixie\'s kernel');
  });

  await t.test('status says the running guest\'s userland: debian, and which tree', async () => {
    const status = JSON.parse((await box.run(['--name', name, 'status', '--json'])).stdout) as { arch: string; userland: { kind: string; usr: string; tree?: string } | null };
    assert.equal(status.arch, 'x86_64');
    assert.equal(status.userland?.kind, 'debian');
    assert.ok(status.userland.usr.endsWith(`/debian/trees/${status.userland.tree}/root/usr`), status.userland.usr);
    const text = await box.run(['--name', name, 'status']);
    assert.match(text.stdout, new RegExp(`^ {2}userland {3}debian: Debian trixie amd64, \\d+ packages, tree ${status.userland.tree}$`, 'm'));
  });

  await t.test('doctor says which userland and why', async () => {
    const doctor = await box.run(['--name', name, 'doctor'], { env });
    assert.match(doctor.stdout, /^✓ userland +--userland debian: Debian trixie/m, doctor.stdout);
  });

  const installed = await box.run(['--name', name, 'nix-config', '--install', '--scope', 'user', '--nix-conf', scope.nixConf, '--ssh-config', scope.sshConfig]);
  assert.equal(installed.code, 0, installed.stderr);
  const nonce = `-userland-${process.pid}-${Date.now()}`;
  for (const system of systems) {
    await t.test(`${system} builds in the guest's sandbox as a build user`, async () => {
      const result = await runNixBuild(env, [
        '--max-jobs', '0', '--no-out-link', '--option', 'substituters', '', probeNix,
        '--arg', 'busybox', JSON.stringify(busybox[system]), '--argstr', 'system', system, '--arg', 'port', String(listener.port),
        // A normal derivation has no network: the outside probe may as well aim at the same listener.
        '--argstr', 'outside', `10.0.2.2 ${listener.port}`,
        '--argstr', 'hidden', '/nix/store/00000000000000000000000000000000-absent', '--argstr', 'nonce', nonce,
      ]);
      assert.equal(result.code, 0, `${system}: ${result.stderr}`);
      assert.match(result.stderr, /on 'ssh-ng:\/\/root@linux-builder-debian'/, 'built in the guest');
      const probe = probeLines(readFileSync(result.stdout.trim(), 'utf8'));
      assert.equal(probe.arch, machines[system]);
      assert.equal(probe.uid, '1000', 'a build user in the sandbox');
      assert.equal(probe.usr, 'absent', 'the sandbox hides /usr');
      assert.equal(probe['host-loopback'], 'unreachable');
      assert.equal(probe.outside, 'unreachable', 'no network');
    });
  }
  assert.equal(listener.connections(), 0, 'no build reached the host\'s loopback');

  const stopped = await box.run(['--name', name, 'stop']);
  assert.equal(stopped.code, 0, stopped.stderr);
});
