/**
 * The on-demand agent with the real VM and the host's real Nix: the first build boots the VM,
 * concurrent connections share one boot, idle stops the VM but never during a connection, a
 * killed VM is replaced, a restarted agent adopts its VM, SIGTERM stops everything.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { processesMatching, sandbox } from '../support/cli.js';
import { arm64BusyboxStorePath } from '../support/busybox-static.js';
import { copiedToBuilder, nixBuild, nixBuildInputs, nixEnv } from '../support/nix.js';
import { agentEvents, freePort, startAgent, waitFor, type RunningAgent } from '../support/agent.js';

function ssh(config: string, alias: string, command: string): Promise<number | null> {
  return new Promise((resolve) => {
    // No shared connection: each call must be a connection of its own to the agent.
    const child = spawn('ssh', ['-F', config, '-o', 'ControlMaster=no', '-o', 'ControlPath=none', alias, command], { stdio: 'ignore' });
    child.on('exit', (code) => resolve(code));
  });
}

test('the agent boots the VM on demand, shares one boot, stops when idle, survives a killed VM and its own restart', async (t) => {
  const box = sandbox();
  const name = 'agent';
  const alias = `linux-builder-${name}`;
  const qmp = join(box.runtimeDir, 'linux-builder', name, 'qmp.sock');
  const port = await freePort();
  const scopeDir = mkdtempSync(join(tmpdir(), 'lb-scope-'));
  const scope = { nixConf: join(scopeDir, 'nix.conf'), sshConfig: join(scopeDir, 'ssh_config') };
  const env = nixEnv(scope, box.env);
  const busybox = await arm64BusyboxStorePath();
  const vms = () => processesMatching(qmp);
  /** The agent's VM session children (one per running VM). */
  const sessions = () => processesMatching(`--name\u0000${name}\u0000vm-session\u0000`);
  const status = async () => JSON.parse((await box.run(['--name', name, 'status', '--json'])).stdout);
  const closeSharedConnection = () => new Promise((resolve) => spawn('ssh', ['-F', scope.sshConfig, '-O', 'exit', alias], { stdio: 'ignore' }).on('exit', resolve));

  let agent: RunningAgent = await startAgent(box, name, ['--listen', `127.0.0.1:${port}`, '--idle-timeout', '20s']);
  t.after(async () => {
    agent.child.kill('SIGKILL');
    await box.run(['--name', name, 'stop', '--force']);
  });
  const installed = await box.run(['--name', name, 'nix-config', '--install', '--scope', 'user', '--nix-conf', scope.nixConf, '--ssh-config', scope.sshConfig]);
  assert.equal(installed.code, 0, installed.stderr);
  assert.match(readFileSync(scope.sshConfig, 'utf8'), new RegExp(`\\n {2}Port ${port}\\n`), 'the alias points at the agent');
  const agentStatus = (await status()).agent;
  assert.equal(agentStatus.listen, `127.0.0.1:${port}`);
  assert.equal(agentStatus.connections, 0);

  await t.test('cold start: the first build boots the VM and succeeds on the first try', async () => {
    assert.equal((await status()).state, 'stopped');
    assert.deepEqual(vms(), []);
    const result = await nixBuild(env, ['aarch64'], { busybox, nonce: `-cold-${Date.now()}` });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(readFileSync(result.stdout.trim(), 'utf8'), 'built on aarch64\n');
    const events = agentEvents(box, name).map((e) => e.event);
    assert.ok(events.indexOf('connection-open') < events.indexOf('boot-start'), 'a connection triggered the boot');
    assert.ok(events.includes('boot-ready'));
    assert.equal(vms().length, 1);
  });

  await t.test('a path the host gains after boot is registered before the build: no copy, even after the guest looked for it', async () => {
    // The guest looks the path up before it exists: with 9p cache=loose the overlay would keep
    // that miss and hide the path after the host adds it, unless the registration drops it.
    const file = join(mkdtempSync(join(tmpdir(), 'lb-late-')), `late-${Date.now()}.bin`);
    writeFileSync(file, 'x'.repeat(256 << 10));
    const hash = execFileSync('nix-hash', ['--type', 'sha256', '--flat', file], { encoding: 'utf8' }).trim();
    const late = execFileSync('nix-store', ['--print-fixed-path', 'sha256', hash, basename(file)], { encoding: 'utf8' }).trim();
    const miss = await box.run(['--name', name, 'ssh', '--', 'ls', late]);
    assert.notEqual(miss.code, 0, 'not there yet');
    assert.equal(execFileSync('nix-store', ['--add-fixed', 'sha256', file], { encoding: 'utf8' }).trim(), late);
    const result = await nixBuildInputs(env, { busybox, inputs: [late], nonce: `-late-${Date.now()}` });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(copiedToBuilder(result.stderr), [], result.stderr);
    assert.equal(readFileSync(result.stdout.trim(), 'utf8'), `${256 << 10}\n`);
  });

  await t.test('a build\'s output, copied back, is known to the guest without registering it: the build that needs it next copies nothing', async () => {
    const syncs = () => agentEvents(box, name).filter((e) => e.event === 'store-sync');
    const before = syncs().length;
    const first = await nixBuild(env, ['aarch64'], { busybox, nonce: `-chain-${Date.now()}` });
    assert.equal(first.code, 0, first.stderr);
    const output = first.stdout.trim();
    // Registered when its connection closed; the guest's shell answered that it holds the path.
    const sync = await waitFor('the sync after the build', () => syncs().slice(before).find((e) => (e.inGuest as number) > 0), 30_000);
    assert.equal(sync.inGuest, sync.registered, JSON.stringify(sync));
    const second = await nixBuildInputs(env, { busybox, inputs: [output], nonce: `-chain-${Date.now()}` });
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(copiedToBuilder(second.stderr), [], second.stderr);
    assert.equal(readFileSync(second.stdout.trim(), 'utf8'), `${'built on aarch64\n'.length}\n`);
  });

  await t.test('kill -9 of QEMU while idle: the agent notices, the next build boots a new VM', async () => {
    const [pid] = vms();
    assert.ok(pid);
    process.kill(pid, 'SIGKILL');
    const exited = await waitFor('vm-exited', () => agentEvents(box, name).find((e) => e.event === 'vm-exited' && e.pid === pid), 15_000);
    assert.match(String(exited.reason), /exited/);
    const result = await nixBuild(env, ['aarch64'], { busybox, nonce: `-after-kill-${Date.now()}` });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(vms().length, 1);
    assert.notEqual(vms()[0], pid);
  });

  await t.test('the agent restarted while its VM runs adopts it: no second QEMU', async () => {
    const [pid] = vms();
    agent.child.kill('SIGKILL');
    await agent.exited;
    agent = await startAgent(box, name, ['--listen', `127.0.0.1:${port}`, '--idle-timeout', '20s']);
    assert.ok(agentEvents(box, name).some((e) => e.event === 'vm-adopted' && e.pid === pid));
    assert.equal(await ssh(scope.sshConfig, alias, 'true'), 0);
    assert.deepEqual(vms(), [pid]);
    // The killed agent's session went with it; the new agent's adopted the VM.
    await waitFor('one session', () => (sessions().length === 1 ? true : undefined), 10_000);
  });

  await t.test('a VM session killed on its own: its VM keeps running and the next connection adopts it', async () => {
    const [pid] = vms();
    const [session] = sessions();
    assert.ok(pid && session);
    process.kill(session, 'SIGKILL');
    await waitFor('the agent to hear it', () => agentEvents(box, name).find((e) => e.event === 'error' && String(e.message).includes(`VM session (pid ${session}) ended on its own`)), 10_000);
    assert.deepEqual(vms(), [pid], 'the VM still runs');
    const adoptedBefore = agentEvents(box, name).filter((e) => e.event === 'vm-adopted' && e.pid === pid).length;
    assert.equal(await ssh(scope.sshConfig, alias, 'true'), 0);
    assert.equal(agentEvents(box, name).filter((e) => e.event === 'vm-adopted' && e.pid === pid).length, adoptedBefore + 1);
    assert.deepEqual(vms(), [pid], 'no second boot');
    assert.equal(sessions().length, 1);
  });

  await t.test('20 connections at once against a stopped VM all succeed, with exactly one boot', async () => {
    await closeSharedConnection();
    const stopped = await box.run(['--name', name, 'stop']);
    assert.equal(stopped.code, 0, stopped.stderr);
    await waitFor('the agent to see the VM gone', () => (vms().length === 0 ? true : undefined), 10_000);
    const bootsBefore = agentEvents(box, name).filter((e) => e.event === 'boot-start').length;
    const codes = await Promise.all(Array.from({ length: 20 }, () => ssh(scope.sshConfig, alias, 'true')));
    assert.deepEqual(codes, Array(20).fill(0), `exit codes: ${codes.join(' ')}`);
    assert.equal(agentEvents(box, name).filter((e) => e.event === 'boot-start').length, bootsBefore + 1);
    assert.equal(vms().length, 1);
  });

  await t.test('idle: never stopped while a connection is open, stopped about 20 s after the last one closes', async () => {
    await closeSharedConnection();
    const long = ssh(scope.sshConfig, alias, 'sleep 60');
    await new Promise((resolve) => setTimeout(resolve, 45_000));
    assert.equal((await status()).state, 'running', 'still running 45 s into a 60 s connection');
    assert.equal(await long, 0);
    const closedAt = Date.now();
    await waitFor('idle-stop', () => agentEvents(box, name).find((e) => e.event === 'idle-stop'), 60_000);
    await waitFor('the VM to stop', async () => ((await status()).state === 'stopped' ? true : undefined), 60_000);
    const seconds = (Date.now() - closedAt) / 1000;
    assert.ok(seconds >= 19 && seconds < 45, `stopped ${seconds} s after the last connection closed`);
    const idle = agentEvents(box, name).find((e) => e.event === 'idle-stop');
    assert.ok(Number(idle?.idleSeconds) >= 19.9);
    assert.deepEqual(vms(), []);
    await waitFor('the session to end with its VM', () => (sessions().length === 0 ? true : undefined), 10_000);
  });

  await t.test('SIGTERM: the agent stops the VM it started and exits 0', async () => {
    assert.equal(await ssh(scope.sshConfig, alias, 'true'), 0);
    assert.equal(vms().length, 1);
    await closeSharedConnection();
    agent.child.kill('SIGTERM');
    assert.equal(await agent.exited, 0);
    assert.deepEqual(vms(), []);
    assert.deepEqual(sessions(), []);
    assert.equal((await status()).agent, null);
  });
});

test('serve refuses a non-loopback --listen and a bad --idle-timeout (exit 2)', async () => {
  const box = sandbox();
  for (const args of [['--listen', '0.0.0.0:4022'], ['--listen', '192.168.1.2:4022'], ['--listen', '127.0.0.1:80'], ['--listen', 'nonsense'], ['--idle-timeout', 'soon']]) {
    const result = await box.run(['--name', 'bad', 'serve', ...args]);
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, /^linux-builder: /);
  }
});

test('vm-session run by hand refuses, saying it is the agent\'s child (exit 1), and --help does not list it', async () => {
  const box = sandbox();
  const result = await box.run(['--name', 'by-hand', 'vm-session']);
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /^linux-builder: vm-session runs only as the on-demand agent's child/);
  assert.doesNotMatch((await box.run(['--help'])).stdout, /vm-session/);
});
