/**
 * The whole flow as a user who is not root, on this machine's Nix: single-user, the store owned
 * by root, no nix-daemon. The user gets its own state, cache and runtime dirs; doctor says why
 * that user cannot build through the builder and what it would need; start, status, ssh and
 * stop work (TCG), and start warns once that host paths could not be registered. A runtime dir
 * another user prepared in /tmp is refused before anything is written in it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, lchownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { checkoutUnreadableBy, nixStoreAdd, processesMatching, runCli, type RunAs, type RunResult } from '../support/cli.js';
import { sharedKernel } from '../support/kernel.js';

const memory = '1G';
const daemonSocket = '/nix/var/nix/daemon-socket/socket';

interface TestUser extends RunAs {
  readonly name: string;
  readonly home: string;
}

function createUser(base: string): TestUser {
  const name = `lb-e2e-${randomBytes(3).toString('hex')}`;
  const home = join(base, 'home');
  execFileSync('useradd', ['--home-dir', home, '--create-home', '--shell', '/bin/sh', '--user-group', name]);
  const id = (flag: string): number => Number(execFileSync('id', [flag, name], { encoding: 'utf8' }).trim());
  return { name, home, uid: id('-u'), gid: id('-g'), cwd: home };
}

/** A throwaway user with a home under a fresh base dir, the CLI run as it, and what removes them. */
function throwawayUser(timeoutMs: number): {
  base: string;
  user: TestUser;
  env: NodeJS.ProcessEnv;
  as: (args: string[]) => Promise<RunResult>;
  runtimeDir: string;
  remove: () => void;
} {
  const base = mkdtempSync(join(tmpdir(), 'lb-user-'));
  chmodSync(base, 0o755); // the user's home is inside
  const user = createUser(base);
  // No XDG variables: the defaults under the user's home and /tmp/linux-builder-<uid>.
  const env = { PATH: process.env.PATH, HOME: user.home, USER: user.name, LOGNAME: user.name, LANG: 'C.UTF-8' };
  const runtimeDir = `/tmp/linux-builder-${user.uid}`;
  return {
    base,
    user,
    env,
    runtimeDir,
    as: (args) => runCli(args, env, timeoutMs, user),
    remove: () => {
      spawnSync('userdel', ['--remove', user.name]);
      for (const dir of [base, runtimeDir, join(tmpdir(), `tsx-${user.uid}`)]) rmSync(dir, { recursive: true, force: true });
    },
  };
}

function canRead(user: TestUser, path: string): boolean {
  return spawnSync('test', ['-r', path], { uid: user.uid, gid: user.gid }).status === 0;
}

/**
 * A kernel this user can read, as a user would pass it with --kernel: the shared one when it is
 * readable (a /boot kernel on Debian), else a copy with its modules beside it (root's cache is
 * private). Hard links when on the same file system: nothing is copied.
 */
async function kernelFor(user: TestUser, base: string): Promise<string> {
  const kernel = await sharedKernel();
  assert.ok(kernel.modulesDir, 'the shared kernel has modules');
  if (canRead(user, kernel.image) && canRead(user, join(kernel.modulesDir, 'modules.dep'))) return kernel.image;
  const image = join(base, 'kernel', 'boot', `vmlinuz-${kernel.version}`);
  const modules = join(base, 'kernel', 'lib', 'modules', kernel.version);
  for (const dir of [dirname(image), dirname(modules)]) mkdirSync(dir, { recursive: true, mode: 0o755 });
  for (const [from, to] of [[kernel.image, image], [kernel.modulesDir, modules]] as const) {
    if (spawnSync('cp', ['-al', from, to]).status !== 0) execFileSync('cp', ['-a', from, to]);
  }
  chmodSync(join(base, 'kernel'), 0o755);
  return image;
}

const ownedBy = (path: string, user: TestUser): boolean => statSync(path).uid === user.uid;

test(
  "as an unprivileged user on root's single-user store: doctor says what is missing; start, status, ssh and stop work",
  { skip: process.getuid?.() === 0 ? false : 'creating a user needs root' },
  async (t) => {
    const { base, user, env, as, runtimeDir, remove } = throwawayUser(300_000);
    const qmp = join(runtimeDir, 'default', 'qmp.sock');
    t.after(async () => {
      await as(['stop', '--force']);
      // Whatever of this user's instance survived (the VM, ssh's shared connection): ours to end.
      for (const pid of processesMatching(`${runtimeDir}/`)) process.kill(pid, 'SIGKILL');
      remove();
    });
    const unreadable = await checkoutUnreadableBy(user, env);
    if (unreadable !== undefined) return t.skip(unreadable);
    const kernel = await kernelFor(user, base);
    const daemon = existsSync(daemonSocket);

    const doctor = await as(['doctor']);
    assert.equal(doctor.code, 1, 'nothing can build through the builder as this user');
    assert.match(doctor.stdout, /^✓ nix +Nix \d+\.\d+/m, 'Nix is found (nix-store fails for this user, nix --version does not)');
    const storeLine = doctor.stdout.split('\n').find((line) => /^. nix store /.test(line)) ?? '';
    if (daemon) {
      assert.match(storeLine, /^✓ nix store +builds go through nix-daemon, which uses the system's builders for every user/);
    } else {
      assert.match(storeLine, /^✗ nix store /);
      assert.match(storeLine, new RegExp(`single-user and belongs to root .*no nix-daemon runs: ${user.name} cannot use it \\(nix-store: .*\\)\\. The VM still starts`));
      assert.match(doctor.stdout, new RegExp(`fix: build as root; or install a multi-user Nix \\(nix-daemon\\) and add ${user.name} to trusted-users`));
    }
    assert.match(doctor.stdout, new RegExp(`fix: linux-builder nix-config --install \\(writes ${user.home}/\\.config/nix/nix\\.conf and ${user.home}/\\.ssh/config\\)`));
    // The kvm group is the fix only where the CPU can run KVM at all.
    const cpuCanKvm = /^flags\s*:.*\s(vmx|svm)(\s|$)/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
    const kvmDenied = existsSync('/dev/kvm') && spawnSync('test', ['-r', '/dev/kvm', '-a', '-w', '/dev/kvm'], { uid: user.uid, gid: user.gid }).status !== 0;
    assert.equal(/usermod -aG kvm/.test(doctor.stdout), cpuCanKvm && kvmDenied, doctor.stdout);
    // Debian 12's C virtiofsd shares read-only only as root: this user's shares are 9p, and doctor says how to get virtio-fs.
    const cVirtiofsd = existsSync('/usr/lib/qemu/virtiofsd') && !['/usr/libexec/virtiofsd', '/usr/lib/virtiofsd'].some((path) => existsSync(path));
    if (cVirtiofsd) assert.match(doctor.stdout, /^! shares +9p: \/usr\/lib\/qemu\/virtiofsd \(QEMU's C virtiofsd\) shares read-only only as root\n +fix: for virtio-fs as this user: sudo apt-get install virtiofsd/m, doctor.stdout);

    const started = await as(['start', '--memory', memory, '--kernel', kernel]);
    assert.equal(started.code, 0, started.stderr);
    assert.match(started.stdout, /builder "default" is running: booted in [\d.]+ s \(tcg/);
    assert.ok(!/\n\s+at /.test(started.stderr), 'no stack trace');
    const warnings = started.stderr.split('\n').filter((line) => line.startsWith('warning:'));
    if (!daemon) {
      assert.equal(warnings.length, 1, started.stderr);
      assert.match(warnings[0] ?? '', /^warning: host store paths are not registered in the guest: this user cannot open the host's Nix store \(nix-store --check-validity: .+\); linux-builder doctor says what this user needs$/);
    }

    if (cVirtiofsd) assert.match(started.stderr, /^shares over 9p: \/usr\/lib\/qemu\/virtiofsd \(QEMU's C virtiofsd\) shares read-only only as root; for virtio-fs as this user: sudo apt-get install virtiofsd, the Rust virtiofsd$/m);

    const status = await as(['status', '--json']);
    assert.equal(status.code, 0, status.stderr);
    const s = JSON.parse(status.stdout);
    assert.equal(s.state, 'running');
    if (cVirtiofsd) assert.equal(s.shares, '9p');
    assert.equal(s.accel, 'tcg');
    assert.equal(s.stateDir, join(user.home, '.local', 'state', 'linux-builder', 'default'));
    assert.deepEqual(processesMatching(qmp), [s.pid]);
    assert.equal(statSync(`/proc/${s.pid}`).uid, user.uid, 'the VM runs as the user');
    for (const dir of [s.stateDir, join(user.home, '.cache', 'linux-builder'), runtimeDir, join(runtimeDir, 'default')]) {
      assert.ok(ownedBy(dir, user), `${dir} belongs to the user`);
      assert.equal(statSync(dir).mode & 0o777, 0o700, dir);
    }

    // A path root added to the host store: the guest sees it through the read-only share.
    const file = join(mkdtempSync(join(tmpdir(), 'lb-store-')), `for-${user.name}.txt`);
    writeFileSync(file, `added by root for ${user.name}\n`);
    const storePath = nixStoreAdd(file);
    rmSync(dirname(file), { recursive: true });
    const cat = await as(['ssh', '--', 'cat', storePath]);
    assert.equal(cat.code, 0, cat.stderr);
    assert.equal(cat.stdout, `added by root for ${user.name}\n`);

    const stopped = await as(['stop']);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stdout, /stopped/);
    assert.deepEqual(processesMatching(`${runtimeDir}/`), [], 'no VM and no ssh connection of this user left');
    assert.equal(JSON.parse((await as(['status', '--json'])).stdout).state, 'stopped');
  },
);

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test(
  'as an unprivileged user: a runtime dir another user made in /tmp, or a symbolic link in its place, is refused and nothing is written; a clean /tmp gives 0700',
  { skip: process.getuid?.() === 0 ? false : 'creating a user needs root' },
  async (t) => {
    const { base, user, env, as, runtimeDir, remove } = throwawayUser(120_000);
    const stateRoot = join(user.home, '.local', 'state', 'linux-builder');
    const nobody = { uid: Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' })) };
    t.after(remove);
    const unreadable = await checkoutUnreadableBy(user, env);
    if (unreadable !== undefined) return t.skip(unreadable);
    const refused = async (args: string[], dir: string, what: RegExp): Promise<void> => {
      const r = await as(args);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 2, r.stderr);
      assert.match(lines[0] ?? '', new RegExp(`^linux-builder: refusing to use ${escape(dir)}: ${what.source}; another user could replace what linux-builder keeps there$`));
      assert.equal(lines[1], 'hint: remove it (as its owner or root), or set XDG_RUNTIME_DIR to a directory of your own');
    };

    // Made by another user, open to all: start and nix-config refuse it and write nothing, in it or in the state dir.
    mkdirSync(runtimeDir, { mode: 0o777 });
    chmodSync(runtimeDir, 0o777);
    chownSync(runtimeDir, nobody.uid, nobody.gid);
    await refused(['start', '--memory', memory], runtimeDir, /it belongs to nobody \(uid \d+\), mode 0777/);
    await refused(['nix-config'], runtimeDir, /it belongs to nobody \(uid \d+\), mode 0777/);
    const doctor = await as(['doctor']);
    assert.match(doctor.stdout, new RegExp(`^✗ socket paths +refusing to use ${escape(runtimeDir)}: it belongs to nobody`, 'm'));
    assert.deepEqual(readdirSync(runtimeDir), []);
    assert.equal(statSync(runtimeDir).mode & 0o7777, 0o777);
    assert.ok(!existsSync(stateRoot), 'nothing written in the state dir either');
    chmodSync(runtimeDir, 0o700); // closed to the user: refused for whose it is, not for what cannot be read
    await refused(['start', '--memory', memory], runtimeDir, /it belongs to nobody \(uid \d+\), mode 0700/);

    // A symbolic link in its place, or in place of the instance dir: never followed, its target untouched.
    const target = join(base, 'target');
    mkdirSync(target, { mode: 0o755 });
    chmodSync(target, 0o755);
    rmSync(runtimeDir, { recursive: true });
    symlinkSync(target, runtimeDir);
    lchownSync(runtimeDir, nobody.uid, nobody.gid);
    await refused(['start', '--memory', memory], runtimeDir, new RegExp(`it is a symbolic link to ${escape(target)}, owned by nobody \\(uid \\d+\\)`));
    rmSync(runtimeDir);
    mkdirSync(runtimeDir, { mode: 0o700 });
    chownSync(runtimeDir, user.uid, user.gid);
    symlinkSync(target, join(runtimeDir, 'default'));
    await refused(['nix-config'], join(runtimeDir, 'default'), new RegExp(`it is a symbolic link to ${escape(target)}, owned by root \\(uid 0\\)`));
    assert.ok(lstatSync(join(runtimeDir, 'default')).isSymbolicLink());
    assert.deepEqual(readdirSync(target), []);
    const targetStat = statSync(target);
    assert.equal(targetStat.mode & 0o7777, 0o755, 'the target keeps its mode');
    assert.equal(targetStat.uid, 0, 'and its owner');

    // A clean /tmp: the user's own dirs, 0700.
    rmSync(runtimeDir, { recursive: true });
    const printed = await as(['nix-config']);
    assert.equal(printed.code, 0, printed.stderr);
    for (const dir of [runtimeDir, join(runtimeDir, 'default'), join(stateRoot, 'default')]) {
      assert.ok(ownedBy(dir, user), `${dir} belongs to the user`);
      assert.equal(lstatSync(dir).mode & 0o7777, 0o700, dir);
    }
  },
);
