/**
 * Multi-user Nix for real: a nix-daemon runs as root (started before the install, as on any
 * multi-user system), root starts the builder and runs nix-config --install, and an unprivileged
 * user's nix-build of an aarch64-linux derivation goes through the daemon to the builder and
 * back. The daemon read its settings before the install: it uses the builder because
 * /etc/nix/machines, which it reads at every build, names it. The user's doctor says so.
 * Everything is undone at the end, whatever happened: the daemon stopped, its socket removed,
 * /etc/nix and the ssh config byte-identical, the user gone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { checkoutUnreadableBy, processesMatching, runCli, runProcess, sandbox, type RunAs, type RunResult } from '../support/cli.js';
import { arm64BusyboxStorePath } from '../support/busybox-static.js';
import { sharedKernel } from '../support/kernel.js';
import { helloNix } from '../support/nix.js';

const socketPath = '/nix/var/nix/daemon-socket/socket';
const name = 'multiuser';
// What the install and the daemon may touch, and must leave as they were.
const watched = ['/etc/nix/nix.conf', '/etc/nix/machines', '/etc/ssh/ssh_config', join(homedir(), '.ssh', 'config'), join(homedir(), '.ssh', 'known_hosts')];

const readIfExists = (path: string): string | undefined => (existsSync(path) ? readFileSync(path, 'utf8') : undefined);

function listening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.on('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/** Live nix-daemon processes, each with its parent: the daemon and its per-connection children. */
function nixDaemons(): { pid: number; ppid: number }[] {
  const found: { pid: number; ppid: number }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv0 = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0')[0] ?? '';
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (argv0.endsWith('nix-daemon') && state !== 'Z') found.push({ pid: Number(entry), ppid: Number(ppid) });
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

interface TestUser extends RunAs {
  readonly name: string;
  readonly home: string;
}

function runAs(user: TestUser, command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 300_000): Promise<RunResult> {
  return runProcess(command, args, env, timeoutMs, user);
}

async function until(what: string, deadlineMs: number, check: () => Promise<boolean> | boolean): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const skip = process.getuid?.() !== 0
  ? 'a nix-daemon, /etc/nix and a throwaway user need root'
  : existsSync(socketPath)
    ? `${socketPath} exists: this test starts a nix-daemon of its own and leaves the host's Nix as it was, so it needs a host without one`
    : false;

test("multi-user Nix: a nix-daemon started before nix-config --install builds an unprivileged user's aarch64-linux derivation through the builder", { skip }, async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'lb-multiuser-'));
  chmodSync(base, 0o755); // the user's home and the expression are inside
  const box = sandbox();
  const before = new Map(watched.map((file) => [file, readIfExists(file)]));
  const socketDirExisted = existsSync(dirname(socketPath));
  const userName = `lb-e2e-${randomBytes(3).toString('hex')}`;
  const home = join(base, 'home');
  // What cleanup undoes, as it comes to exist.
  const made: { user?: TestUser; daemon?: ChildProcess } = {};

  let cleaned = false;
  const cleanup = async (): Promise<void> => {
    if (cleaned) return;
    cleaned = true;
    await box.run(['--name', name, 'nix-config', '--uninstall']);
    const { user, daemon } = made;
    if (daemon?.pid !== undefined) {
      const daemonPid = daemon.pid;
      // Its per-connection children, which could outlive it holding the store open.
      const children = nixDaemons().filter((p) => p.ppid === daemonPid).map((p) => p.pid);
      try {
        process.kill(-daemon.pid, 'SIGTERM');
      } catch {
        // already gone
      }
      const exited = daemon.exitCode !== null || daemon.signalCode !== null;
      if (!exited) await new Promise((resolve) => daemon.once('exit', resolve));
      for (const pid of children.filter((p) => existsSync(`/proc/${p}`))) process.kill(pid, 'SIGKILL');
    }
    if (!socketDirExisted) rmSync(dirname(socketPath), { recursive: true, force: true });
    await box.run(['--name', name, 'stop', '--force']);
    if (user) {
      for (const pid of processesMatching(`/tmp/linux-builder-${user.uid}/`)) process.kill(pid, 'SIGKILL');
      spawnSync('userdel', ['--remove', user.name]);
      for (const dir of [`/tmp/linux-builder-${user.uid}`, join(tmpdir(), `tsx-${user.uid}`), `/nix/var/nix/profiles/per-user/${user.name}`, `/nix/var/nix/gcroots/per-user/${user.name}`]) {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    rmSync(base, { recursive: true, force: true });
  };
  t.after(cleanup);

  execFileSync('useradd', ['--home-dir', home, '--create-home', '--shell', '/bin/sh', '--user-group', userName]);
  const id = (flag: string): number => Number(execFileSync('id', [flag, userName], { encoding: 'utf8' }).trim());
  const user: TestUser = { name: userName, home, uid: id('-u'), gid: id('-g'), cwd: home };
  made.user = user;
  const userEnv = { PATH: process.env.PATH, HOME: home, USER: userName, LOGNAME: userName, LANG: 'C.UTF-8', NIX_REMOTE: 'daemon' };
  const unreadable = await checkoutUnreadableBy(user, userEnv);
  if (unreadable !== undefined) return t.skip(unreadable);

  // The builder, as root.
  const busybox = await arm64BusyboxStorePath();
  const kernel = await sharedKernel();
  const started = await box.run(['--name', name, 'start', '--memory', '1G', '--kernel', kernel.image]);
  assert.equal(started.code, 0, started.stderr);

  // The daemon reads its settings now, before the install; the host is offline, so no substituters.
  const daemonLog = openSync(join(base, 'nix-daemon.log'), 'w');
  made.daemon = spawn('nix-daemon', ['--option', 'substituters', ''], { detached: true, stdio: ['ignore', daemonLog, daemonLog], env: { PATH: process.env.PATH, HOME: homedir() } });
  await until('the nix-daemon listens', 15_000, () => listening(socketPath));

  const installed = await box.run(['--name', name, 'nix-config', '--install']);
  assert.equal(installed.code, 0, installed.stderr);
  const instanceMachines = join(box.stateHome, 'linux-builder', name, 'machines');
  assert.match(installed.stdout, new RegExp(`/etc/nix/machines: @${instanceMachines} \\(Nix reads it at every build\\)`));
  assert.match(installed.stdout, /The running nix-daemon uses the builder from its next build on: it reads \/etc\/nix\/machines at every build/);
  assert.doesNotMatch(readFileSync('/etc/nix/nix.conf', 'utf8'), /^builders\s*=/m, 'builders is left to its default, which names /etc/nix/machines');
  assert.equal(installed.stderr, '');

  const rootDoctor = await box.run(['--name', name, 'doctor']);
  assert.match(rootDoctor.stdout, new RegExp(`^✓ nix config +builders include /etc/nix/machines, which names builder "${name}"$`, 'm'), rootDoctor.stdout);
  assert.match(rootDoctor.stdout, /^✓ ssh config /m, rootDoctor.stdout);

  // The user's build: evaluated by the user, built by the daemon, on the builder.
  const expression = join(base, 'hello.nix');
  copyFileSync(helloNix, expression);
  chmodSync(expression, 0o644);
  const built = await runAs(user, 'nix-build', [
    '--no-out-link', expression, '--arg', 'busybox', JSON.stringify(busybox), '--argstr', 'nonce', `-multiuser-${Date.now()}`, '-A', 'aarch64',
  ], userEnv);
  assert.equal(built.code, 0, `${built.stderr}\n--- nix-daemon:\n${readFileSync(join(base, 'nix-daemon.log'), 'utf8')}`);
  const output = built.stdout.trim();
  assert.equal(readFileSync(output, 'utf8'), 'built on aarch64\n', 'built on the builder, under its aarch64 emulation');
  assert.equal(statSync(output).uid, 0, 'stored by the daemon, as root');

  const doctor = await runCli(['--name', name, 'doctor'], userEnv, 120_000, user);
  assert.match(doctor.stdout, /^✓ nix store +builds go through nix-daemon, which uses the system's builders for every user/m, doctor.stdout);
  assert.match(doctor.stdout, new RegExp(`^✓ nix config +the nix-daemon builds through builder "${name}" for every user: /etc/nix/machines, which it reads at every build`, 'm'), doctor.stdout);
  assert.match(doctor.stdout, new RegExp(`^✓ ssh config +root's ssh \\(/etc/ssh/ssh_config\\): linux-builder-${name} → 127\\.0\\.0\\.1:\\d+`, 'm'), doctor.stdout);

  // Where builders must change in nix.conf, the running daemon would not see it: the install
  // restarts it through its service manager, or (none runs it here) says what to run.
  const elsewhere = { nixConf: join(base, 'nix.conf'), sshConfig: join(base, 'ssh_config') };
  const explicitBuilders = { ...box.env, NIX_CONFIG: 'builders = ssh://other aarch64-linux' };
  const viaNixConf = await box.run(['--name', `${name}-2`, 'nix-config', '--install', '--nix-conf', elsewhere.nixConf, '--ssh-config', elsewhere.sshConfig], { env: explicitBuilders });
  assert.equal(viaNixConf.code, 0, viaNixConf.stderr);
  assert.match(readFileSync(elsewhere.nixConf, 'utf8'), /^builders = ssh:\/\/other aarch64-linux;@/m);
  assert.match(viaNixConf.stderr, /^warning: a nix-daemon is running and reads builders from nix\.conf only at its start; it will not use the builder until restarted \(systemctl restart nix-daemon\.service: .+\)$/m);
  assert.match(viaNixConf.stderr, /^hint: restart nix-daemon the way it was started, e\.g\. sudo systemctl restart nix-daemon\.service$/m);
  assert.equal((await box.run(['--name', `${name}-2`, 'nix-config', '--uninstall'])).code, 0);

  await cleanup();
  for (const [file, text] of before) assert.equal(readIfExists(file), text, `${file} is as it was`);
  assert.deepEqual(nixDaemons(), [], 'no nix-daemon left');
  assert.ok(!existsSync(socketPath), 'no daemon socket left: the host is single-user again');
  assert.equal(spawnSync('id', [userName]).status, 1, 'the user is gone');
});
