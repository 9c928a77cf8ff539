/**
 * The real thing: QEMU (TCG here), our guest, real sshd, the host's Nix store.
 * One instance goes through start → status → ssh → store → stop; others prove the lock,
 * the boot-failure path, bad input and stale pids.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync, copyFileSync, truncateSync, statSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { nixStoreAdd, processesMatching, sandbox, type Sandbox } from '../support/cli.js';
import { roots } from '../../src/instance/paths.js';
import { fakeVmlinux } from '../support/fake-kernel.js';

const memory = '1G';

/** The first line sshd sends on a new connection to port, which is then closed before logging in. */
function sshBanner(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no line from port ${port} within 30 s (got ${JSON.stringify(received)})`));
    }, 30_000);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (!received.includes('\n')) return;
      clearTimeout(timer);
      socket.destroy();
      resolve(received.split(/\r?\n/)[0] ?? '');
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** The instance's virtiofsd processes: their command line names a socket in its runtime dir. */
function virtiofsds(box: Sandbox, name: string): number[] {
  return processesMatching(`--socket-path=${join(box.runtimeDir, 'linux-builder', name, 'fs')}`);
}

test('start → status → ssh → the guest sees the host store → stop leaves no process', async (t) => {
  const box = sandbox();
  const qmp = join(box.runtimeDir, 'linux-builder', 'e2e', 'qmp.sock');
  t.after(async () => {
    await box.run(['--name', 'e2e', 'stop', '--force']);
  });

  const started = await box.run(['--name', 'e2e', 'start', '--memory', memory, '--verbose']);
  assert.equal(started.code, 0, started.stderr);
  assert.match(started.stdout, /builder "e2e" is running: booted in [\d.]+ s \(tcg/);
  assert.match(started.stderr, /TCG|tcg/, 'says why TCG was chosen');

  const status = await box.run(['--name', 'e2e', 'status', '--json']);
  assert.equal(status.code, 0);
  const s = JSON.parse(status.stdout);
  assert.equal(s.state, 'running');
  assert.equal(s.name, 'e2e');
  assert.equal(s.driver, 'qemu');
  assert.equal(s.accel, 'tcg');
  assert.equal(s.memoryMiB, 1024);
  assert.equal(s.arch, 'x86_64');
  assert.deepEqual(s.userland, { kind: 'host', description: "the host's /usr", usr: '/usr' }, 'auto picks the host\'s /usr on this Debian host');
  assert.ok(s.pid > 0);
  assert.deepEqual(Object.keys(s.ssh).sort(), ['host', 'hostKeyAlias', 'kind', 'port', 'user']);
  assert.equal(s.ssh.kind, 'tcp');
  assert.equal(s.ssh.host, '127.0.0.1');
  assert.ok(s.bootSeconds > 0);
  assert.deepEqual(s.reasons, []);
  assert.deepEqual(processesMatching(qmp), [s.pid]);
  // As root here, Debian 12's QEMU ships a virtiofsd: /usr and the store come over virtio-fs.
  assert.equal(s.shares, 'virtiofs');
  assert.ok(virtiofsds(box, 'e2e').length >= 3, 'a virtiofsd per share');
  const mounts = await box.run(['--name', 'e2e', 'ssh', '--', 'cat /proc/mounts']);
  assert.match(mounts.stdout, /^hostusr \/usr virtiofs ro[, ]/m);
  assert.match(mounts.stdout, /^nixstore \/nix\/\.ro-store virtiofs ro[, ]/m);

  const uname = await box.run(['--name', 'e2e', 'ssh', '--', 'uname', '-m']);
  assert.equal(uname.code, 0, uname.stderr);
  assert.equal(uname.stdout.trim(), 'x86_64');

  // Connections that hang up before logging in (a port scan, a probe that reads the banner) never
  // make sshd turn the host away: behind QEMU's NAT every client is the one address 10.0.2.2,
  // which OpenSSH 9.8+ would otherwise refuse for a while (PerSourcePenalties).
  for (let i = 1; i <= 30; i++) assert.match(await sshBanner(s.ssh.port), /^SSH-2\.0-/, `connection ${i} after ${i - 1} that hung up`);
  const afterHangUps = await box.run(['--name', 'e2e', 'ssh', '--', 'true']);
  assert.equal(afterHangUps.code, 0, afterHangUps.stderr);

  // A store path the host has is visible in the guest through the read-only share.
  const dir = mkdtempSync(join(tmpdir(), 'lb-store-'));
  const file = join(dir, `hello-${Date.now()}.txt`);
  writeFileSync(file, 'from the host\n');
  const storePath = nixStoreAdd(file);
  const cat = await box.run(['--name', 'e2e', 'ssh', '--', 'cat', storePath]);
  assert.equal(cat.code, 0, cat.stderr);
  assert.equal(cat.stdout, 'from the host\n');

  // The guest cannot write to the host: every share is read-only on the host's side, even for
  // the guest's root remounting it read-write.
  for (const [mount, target] of [['/usr', '/usr/lb-write-test'], ['/nix/.ro-store', '/nix/.ro-store/lb-write-test']]) {
    const write = await box.run(['--name', 'e2e', 'ssh', '--', `mount -o remount,rw ${mount}; touch ${target}`]);
    assert.notEqual(write.code, 0, `${target} must not be writable`);
    assert.match(write.stderr, /Read-only file system/);
  }
  assert.ok(!existsSync('/usr/lb-write-test'));
  assert.ok(!existsSync('/nix/store/lb-write-test'));

  // Secrets stay private: state and share dirs 0700, keys 0600.
  const stateDir = join(box.stateHome, 'linux-builder', 'e2e');
  for (const [path, mode] of [
    [stateDir, 0o700],
    [join(stateDir, 'guest-share'), 0o700],
    [join(stateDir, 'id_ed25519'), 0o600],
    [join(stateDir, 'guest-share', 'ssh_host_ed25519_key'), 0o600],
  ] as const) {
    assert.equal(statSync(path).mode & 0o777, mode, path);
  }

  // Every TCP listener of the VM is on loopback.
  const listeners = execFileSync('ss', ['-ltnpH'], { encoding: 'utf8' })
    .split('\n')
    .filter((line) => line.includes(`pid=${s.pid},`));
  assert.ok(listeners.length > 0, 'the VM listens for SSH');
  for (const line of listeners) assert.match(line, /\s127\.0\.0\.1:\d+\s/, line);

  const again = await box.run(['--name', 'e2e', 'start']);
  assert.equal(again.code, 0);
  assert.match(again.stdout, /already running/);

  const stopped = await box.run(['--name', 'e2e', 'stop']);
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.match(stopped.stdout, /stopped/);
  assert.deepEqual(processesMatching(qmp), []);
  assert.deepEqual(virtiofsds(box, 'e2e'), [], 'no virtiofsd outlives its VM');
  const after = JSON.parse((await box.run(['--name', 'e2e', 'status', '--json'])).stdout);
  assert.equal(after.state, 'stopped');

  const twice = await box.run(['--name', 'e2e', 'stop']);
  assert.equal(twice.code, 0);
  assert.match(twice.stdout, /not running/);
});

test('ten starts at once boot exactly one VM; the other nine find it running', async (t) => {
  const box = sandbox();
  const qmp = join(box.runtimeDir, 'linux-builder', 'many', 'qmp.sock');
  t.after(async () => {
    await box.run(['--name', 'many', 'stop', '--force']);
  });
  const results = await Promise.all(Array.from({ length: 10 }, () => box.run(['--name', 'many', 'start', '--memory', memory])));
  for (const result of results) assert.equal(result.code, 0, result.stderr);
  const outputs = results.map((r) => r.stdout);
  assert.equal(outputs.filter((o) => /already running/.test(o)).length, 9, outputs.join('\n'));
  assert.equal(outputs.filter((o) => /is running: booted in/.test(o)).length, 1, outputs.join('\n'));
  assert.equal(processesMatching(qmp).length, 1);
  const stopped = await box.run(['--name', 'many', 'stop', '--force']);
  assert.equal(stopped.code, 0);
  assert.deepEqual(processesMatching(qmp), []);
});

function findKernelImage(): string {
  const cache = join(roots().cache, 'kernels');
  const candidates: string[] = [];
  for (const dir of ['/boot', ...(existsSync(cache) ? readdirSync(cache).map((d) => join(cache, d, 'boot')) : [])]) {
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir)) if (f.startsWith('vmlinuz-')) candidates.push(join(dir, f));
  }
  const found = candidates.find((p) => statSync(p).size > 1_000_000);
  assert.ok(found, 'a kernel image exists after the first start');
  return found;
}

test('a kernel that cannot boot: QEMU gives up at once, and start fails at the process rung with nothing left', async (t) => {
  const box = sandbox();
  const qmp = join(box.runtimeDir, 'linux-builder', 'broken', 'qmp.sock');
  t.after(async () => {
    await box.run(['--name', 'broken', 'stop', '--force']);
  });
  // Half a kernel: the header loads, the rest is missing.
  const kernel = join(mkdtempSync(join(tmpdir(), 'lb-kernel-')), 'vmlinuz-broken');
  copyFileSync(findKernelImage(), kernel);
  truncateSync(kernel, Math.floor(statSync(kernel).size / 2));
  const result = await box.run(['--name', 'broken', 'start', '--memory', memory, '--kernel', kernel, '--boot-timeout', '20s']);
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /^linux-builder: the guest did not become ready: rung "process" \(the VM process stays alive\) failed: /m);
  assert.match(result.stderr, /^hint: .*console/m);
  assert.ok(!/\n\s+at /.test(result.stderr), 'no stack trace');
  assert.deepEqual(processesMatching(qmp), []);
  assert.deepEqual(virtiofsds(box, 'broken'), [], 'no virtiofsd after a failed start');
  const s = JSON.parse((await box.run(['--name', 'broken', 'status', '--json'])).stdout);
  assert.equal(s.state, 'stopped');
});

test('a kernel that hangs: start fails within its deadline at the banner rung, with the console, nothing left', async (t) => {
  const box = sandbox();
  const qmp = join(box.runtimeDir, 'linux-builder', 'hangs', 'qmp.sock');
  t.after(async () => {
    await box.run(['--name', 'hangs', 'stop', '--force']);
  });
  // A PVH kernel whose only instruction halts forever, named like the real kernel so its modules are found.
  const real = findKernelImage();
  const kernel = join(mkdtempSync(join(tmpdir(), 'lb-kernel-')), real.slice(real.lastIndexOf('/') + 1));
  writeFileSync(kernel, fakeVmlinux({ pvhNote: true }));
  const started = Date.now();
  const result = await box.run(['--name', 'hangs', 'start', '--memory', memory, '--kernel', kernel, '--boot-timeout', '15s']);
  const seconds = (Date.now() - started) / 1000;
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /^linux-builder: the guest did not become ready: rung "ssh-banner" .* not within the deadline/m);
  assert.match(result.stderr, /^hint: the console is empty/m);
  assert.ok(seconds >= 15 && seconds < 15 + 30, `gave up after ${seconds} s`);
  assert.deepEqual(processesMatching(qmp), []);
  assert.deepEqual(virtiofsds(box, 'hangs'), [], 'no virtiofsd after a start that timed out');
});

test('bad input exits 2 with one line and a hint, and writes nothing', async () => {
  const box = sandbox();
  const cases: string[][] = [
    ['start', '--memory', 'lots'],
    ['start', '--memory', '64M'],
    ['start', '--cores', '0'],
    ['start', '--cores', '100000'],
    ['start', '--accel', 'warp'],
    ['start', '--kernel', '/nonexistent/vmlinuz'],
    ['start', '--boot-timeout', 'forever'],
    ['--name', '../etc', 'start'],
    ['--name', 'a b', 'status'],
    ['--name', 'x;rm -rf ~', 'start'],
    ['--name', '', 'start'],
    ['frobnicate'],
  ];
  for (const args of cases) {
    const result = await box.run(args);
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, /^linux-builder: /, args.join(' '));
    assert.ok(result.stderr.trim().split('\n').length <= 3, `${args.join(' ')}: ${result.stderr}`);
    assert.ok(!/\n\s+at /.test(result.stderr), 'no stack trace');
  }
  assert.deepEqual(readdirSync(box.stateHome), [], 'nothing written');
});

test('a stale pid that now belongs to another program reads as stopped', async () => {
  const box = sandbox();
  const dir = join(box.stateHome, 'linux-builder', 'stale');
  const other = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    await box.run(['--name', 'stale', 'status']);
    const state = {
      version: 1, phase: 'running', pid: other.pid, driver: 'qemu', accel: 'tcg', accelReason: '', cores: 1, memoryMiB: 1024,
      systems: ['x86_64-linux'], sshPort: 40000, startedAt: new Date().toISOString(), bootSeconds: 8, kernel: 'k', initrd: 'i',
    };
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'state.json'), JSON.stringify(state));
    const s = JSON.parse((await box.run(['--name', 'stale', 'status', '--json'])).stdout);
    assert.equal(s.state, 'stopped');
    assert.match(s.reasons.join(' '), /stale pid/);
    const stopped = await box.run(['--name', 'stale', 'stop']);
    assert.equal(stopped.code, 0);
    assert.equal(other.exitCode, null, 'the other program was not touched');
    assert.ok(!existsSync(join(dir, 'state.json')));
  } finally {
    other.kill();
  }
});

test('a virtiofsd that fails to start: the shares come over 9p, start says so, and no virtiofsd is left', async (t) => {
  const box = sandbox();
  t.after(async () => {
    await box.run(['--name', 'vfsfail', 'stop', '--force']);
  });
  // The real virtiofsd, given an option it does not know: it exits at once, as a broken one would.
  const bin = mkdtempSync(join(tmpdir(), 'lb-vfsd-'));
  const real = ['/usr/libexec/virtiofsd', '/usr/lib/virtiofsd', '/usr/lib/qemu/virtiofsd'].find((path) => existsSync(path));
  assert.ok(real, 'a virtiofsd on this host');
  writeFileSync(join(bin, 'virtiofsd'), `#!/bin/sh\ncase "$1" in --help) exec ${real} --help ;; esac\nexec ${real} --no-such-option "$@"\n`, { mode: 0o755 });
  const env = { ...box.env, PATH: `${bin}:${process.env.PATH ?? ''}` };
  const started = await box.run(['--name', 'vfsfail', 'start', '--memory', memory], { env });
  assert.equal(started.code, 0, started.stderr);
  assert.match(started.stderr, /^shares over 9p: virtiofs did not start \(virtiofsd for \/usr exited: .*\)$/m);
  assert.match(started.stdout, /shares over 9p\)$/m);
  assert.deepEqual(virtiofsds(box, 'vfsfail'), []);
  const mounts = await box.run(['--name', 'vfsfail', 'ssh', '--', 'cat /proc/mounts']);
  assert.match(mounts.stdout, /^nixstore \/nix\/\.ro-store 9p ro[, ]/m);
  const stopped = await box.run(['--name', 'vfsfail', 'stop']);
  assert.equal(stopped.code, 0, stopped.stderr);
});
