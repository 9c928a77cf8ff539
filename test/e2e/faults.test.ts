/**
 * Faults with the real VM, the real agent and the host's real Nix: QEMU killed in the middle of
 * a build, `stop` during a build (through the agent and straight to the VM), state.json torn and
 * the state dir removed while stopped; and every listener the product opens while an
 * agent-started VM runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { childProcesses, processesMatching, sandbox, type Sandbox } from '../support/cli.js';
import { arm64BusyboxStorePath } from '../support/busybox-static.js';
import { buildStarted, nixBuild, nixEnv, startSlowBuild, type RunningNixBuild } from '../support/nix.js';
import { agentEvents, agentLogTail, freePort, startAgent, waitFor, type RunningAgent } from '../support/agent.js';
import type { InstanceStatus } from '../../src/instance/status.js';

/** Generous: a build must end once its VM is gone, not when the guest's hour-long sleep would. */
const buildEndsWithinMs = 10 * 60_000;

interface Instance {
  readonly name: string;
  readonly stateDir: string;
  readonly runtimeDir: string;
  readonly scopeDir: string;
  readonly env: NodeJS.ProcessEnv;
  status(): Promise<{ code: number | null; json: InstanceStatus }>;
  statusText(): Promise<string>;
}

function instance(box: Sandbox, name: string): Instance {
  const scopeDir = mkdtempSync(join(tmpdir(), 'lb-scope-'));
  return {
    name,
    stateDir: join(box.stateHome, 'linux-builder', name),
    runtimeDir: join(box.runtimeDir, 'linux-builder', name),
    scopeDir,
    env: nixEnv({ nixConf: join(scopeDir, 'nix.conf'), sshConfig: join(scopeDir, 'ssh_config') }, box.env),
    async status() {
      const result = await box.run(['--name', name, 'status', '--json']);
      return { code: result.code, json: JSON.parse(result.stdout) as InstanceStatus };
    },
    async statusText() {
      return (await box.run(['--name', name, 'status'])).stdout;
    },
  };
}

async function installNixConfig(box: Sandbox, i: Instance): Promise<void> {
  const installed = await box.run(['--name', i.name, 'nix-config', '--install', '--scope', 'user', '--nix-conf', join(i.scopeDir, 'nix.conf'), '--ssh-config', join(i.scopeDir, 'ssh_config')]);
  assert.equal(installed.code, 0, installed.stderr);
}

/** The instance's VM processes (their command line names its QMP socket). */
function vms(i: Instance): number[] {
  return processesMatching(join(i.runtimeDir, 'qmp.sock'));
}

/** ssh's shared connections to the instance: a master retitles itself "ssh: <control path> [mux]". */
function sshMasters(i: Instance): number[] {
  return processesMatching(join(i.runtimeDir, 'ssh'));
}

/**
 * Every process of the instance besides the agent: QEMU, ssh's shared connection, and any ssh
 * with the instance's or the Nix scope's config.
 */
function instanceProcesses(i: Instance): number[] {
  return [...new Set([...processesMatching(i.runtimeDir), ...processesMatching(i.stateDir), ...processesMatching(i.scopeDir)])];
}

/** The agent's children, leaving out tsx's compiler service (there because the tests run the CLI from source). */
function agentChildren(agent: RunningAgent): string[] {
  return childProcesses(agent.child.pid ?? 0)
    .map((p) => p.commandLine)
    .filter((commandLine) => !/esbuild --service/.test(commandLine));
}

interface Listener {
  readonly netid: string;
  readonly local: string;
  readonly pid: number;
}

/** Listening TCP, UDP and unix sockets of the given processes, from ss. */
function listenersOf(pids: readonly number[]): Listener[] {
  const lines = execFileSync('ss', ['-Hlnptux'], { encoding: 'utf8' }).split('\n');
  return lines.flatMap((line) => {
    const fields = line.trim().split(/\s+/);
    const owners = [...line.matchAll(/pid=(\d+),/g)].map((m) => Number(m[1]));
    const owner = owners.find((pid) => pids.includes(pid));
    return owner === undefined ? [] : [{ netid: fields[0] ?? '', local: fields[4] ?? '', pid: owner }];
  });
}

function fileNames(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

test('through the agent: private listeners; QEMU killed mid-build; stop during a build', async (t) => {
  const box = sandbox();
  const i = instance(box, 'faulty');
  const busybox = await arm64BusyboxStorePath();
  const port = await freePort();
  const builds: RunningNixBuild[] = [];
  const agent = await startAgent(box, i.name, ['--listen', `127.0.0.1:${port}`, '--idle-timeout', '1h']);
  t.after(async () => {
    for (const build of builds) build.kill();
    agent.child.kill('SIGKILL');
    await box.run(['--name', i.name, 'stop', '--force']);
  });
  await installNixConfig(box, i);

  await t.test('every listener of the agent, QEMU and ssh is on loopback or in a 0700 directory', async () => {
    const first = await nixBuild(i.env, ['x86_64'], { busybox, nonce: `-listeners-${Date.now()}` });
    assert.equal(first.code, 0, `${first.stderr}\n--- agent.log:\n${agentLogTail(box, i.name)}`);
    // The shared ssh connection the product keeps to the guest (ControlMaster): make sure it is up now.
    const ssh = await box.run(['--name', i.name, 'ssh', '--', 'true']);
    assert.equal(ssh.code, 0, ssh.stderr);
    const { json: s } = await i.status();
    assert.equal(s.state, 'running');
    const agentPid = agent.child.pid ?? 0;
    assert.equal(s.agent?.pid, agentPid);
    assert.ok(s.pid !== null && s.ssh?.kind === 'tcp');
    const sshPort = s.ssh.port;
    const masters = sshMasters(i);
    assert.ok(masters.length > 0, 'a shared ssh connection runs');
    const vmPid = s.pid;
    const listeners = listenersOf([agentPid, vmPid, ...masters]);

    const inet = listeners.filter((l) => l.netid === 'tcp' || l.netid === 'udp');
    assert.ok(inet.some((l) => l.pid === agentPid && l.local === `127.0.0.1:${port}`), `the agent listens: ${JSON.stringify(listeners)}`);
    assert.ok(inet.some((l) => l.pid === vmPid && l.local === `127.0.0.1:${sshPort}`), `QEMU forwards SSH: ${JSON.stringify(listeners)}`);
    for (const l of inet) assert.match(l.local, /^(127\.0\.0\.1|\[::1\]):\d+$/, `${l.netid} ${l.local} of pid ${l.pid}`);

    const unix = listeners.filter((l) => l.netid.startsWith('u_'));
    assert.ok(unix.some((l) => l.pid === vmPid && l.local === join(i.runtimeDir, 'qmp.sock')), `QMP: ${JSON.stringify(listeners)}`);
    // ssh binds its control socket under a temporary name beside the final one, then renames it.
    assert.ok(unix.some((l) => masters.includes(l.pid) && dirname(l.local) === i.runtimeDir), `ControlMaster: ${JSON.stringify(listeners)}`);
    assert.ok(statSync(join(i.runtimeDir, 'ssh')).isSocket());
    assert.ok(!unix.some((l) => l.pid === agentPid), 'the agent opens no unix socket');
    for (const l of unix) {
      assert.ok(l.local.startsWith('/'), `a socket with a path, not abstract: ${l.local}`);
      const dir = statSync(dirname(l.local));
      assert.equal(dir.mode & 0o777, 0o700, `${dirname(l.local)} (holds ${l.local})`);
      assert.equal(dir.uid, process.getuid?.());
    }
  });

  await t.test('QEMU killed with SIGKILL in the middle of a build: Nix fails at once, status says why and when, the next build boots a fresh VM', { timeout: buildEndsWithinMs }, async () => {
    const build = startSlowBuild(i.env, `-killed-${Date.now()}`);
    builds.push(build);
    await buildStarted(build);
    const [pid] = vms(i);
    assert.ok(pid);
    const bootsBefore = agentEvents(box, i.name).filter((e) => e.event === 'boot-start').length;
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');

    const result = await build.result;
    assert.notEqual(result.code, 0, 'the build failed');
    assert.match(result.stderr, /^error: .*slow-killed/m, result.stderr);

    const exited = await waitFor('vm-exited', () => agentEvents(box, i.name).find((e) => e.event === 'vm-exited' && e.pid === pid), 120_000);
    assert.match(String(exited.reason), /exited without a stop: killed by SIGKILL/);
    const { json: s } = await i.status();
    assert.equal(s.state, 'stopped');
    assert.equal(s.pid, null);
    const lastExit = s.lastExit;
    assert.ok(lastExit);
    assert.equal(lastExit.pid, pid);
    assert.equal(lastExit.requested, false);
    assert.equal(lastExit.reason, 'killed by SIGKILL');
    assert.ok(Date.parse(lastExit.at) >= killedAt, `${lastExit.at} is after the kill`);
    assert.match(s.reasons.join('\n'), new RegExp(`the VM \\(pid ${pid}\\) exited without "stop" at ${lastExit.at}: killed by SIGKILL; its console: `));
    const text = await i.statusText();
    assert.match(text, new RegExp(`^ {2}last exit {2}${lastExit.at}: killed by SIGKILL \\(pid ${pid}, not requested\\)$`, 'm'), text);
    assert.match(text, /^ {2}note {7}the VM .* exited without "stop"/m, text);

    // Nothing stale: no run state, no start lock, no pid file, QMP or control socket.
    assert.deepEqual(fileNames(i.runtimeDir), []);
    assert.ok(!existsSync(join(i.stateDir, 'state.json')));
    assert.ok(!existsSync(join(i.stateDir, 'lock')));
    await waitFor('no agent children', () => (agentChildren(agent).length === 0 ? true : undefined), 60_000);

    const next = await nixBuild(i.env, ['x86_64'], { busybox, nonce: `-after-kill-${Date.now()}` });
    assert.equal(next.code, 0, next.stderr);
    assert.equal(readFileSync(next.stdout.trim(), 'utf8'), 'built on x86_64\n');
    assert.equal(agentEvents(box, i.name).filter((e) => e.event === 'boot-start').length, bootsBefore + 1, 'one fresh boot');
    const [fresh] = vms(i);
    assert.ok(fresh && fresh !== pid);
    assert.equal((await i.status()).json.pid, fresh);
    assert.equal(readFileSync(join(i.runtimeDir, 'vm.pid'), 'utf8').trim(), String(fresh));
  });

  await t.test('stop while a build runs: Nix fails at once, stop exits 0, no QEMU, ssh or agent child is left', { timeout: buildEndsWithinMs }, async () => {
    const build = startSlowBuild(i.env, `-stopped-${Date.now()}`);
    builds.push(build);
    await buildStarted(build);
    const [pid] = vms(i);
    assert.ok(pid);

    const stopped = await box.run(['--name', i.name, 'stop']);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stdout, /stopped/);
    const result = await build.result;
    assert.notEqual(result.code, 0, 'the build failed');
    assert.match(result.stderr, /^error: .*slow-stopped/m, result.stderr);

    assert.deepEqual(vms(i), []);
    const exited = await waitFor('vm-exited', () => agentEvents(box, i.name).find((e) => e.event === 'vm-exited' && e.pid === pid), 120_000);
    assert.match(String(exited.reason), /by "linux-builder stop"/, 'the agent knows the stop asked for it');
    assert.deepEqual(instanceProcesses(i), []);
    await waitFor('no agent children', () => (agentChildren(agent).length === 0 ? true : undefined), 60_000);
    assert.deepEqual(fileNames(i.runtimeDir), []);
    const { json: s } = await i.status();
    assert.equal(s.state, 'stopped');
    assert.deepEqual(s.reasons, []);
    assert.equal(s.lastExit?.pid, pid);
    assert.equal(s.lastExit?.requested, true);
    assert.match(s.lastExit?.reason ?? '', /^(powered off|killed) by "linux-builder stop"/);
    assert.ok(s.agent, 'the agent still serves');
  });
});

test('straight to the VM: stop during a build; state.json torn; the state dir removed', async (t) => {
  const box = sandbox();
  const i = instance(box, 'bare');
  const busybox = await arm64BusyboxStorePath();
  const builds: RunningNixBuild[] = [];
  t.after(async () => {
    for (const build of builds) build.kill();
    await box.run(['--name', i.name, 'stop', '--force']);
  });
  const started = await box.run(['--name', i.name, 'start', '--memory', '1G']);
  assert.equal(started.code, 0, started.stderr);
  await installNixConfig(box, i);
  const statePath = join(i.stateDir, 'state.json');
  const runState = readFileSync(statePath, 'utf8');
  const torn = runState.slice(0, Math.floor(runState.length / 2));

  await t.test('stop while a build runs: Nix fails at once, stop exits 0, no QEMU and no shared ssh connection left', { timeout: buildEndsWithinMs }, async () => {
    const build = startSlowBuild(i.env, `-stopped-${Date.now()}`);
    builds.push(build);
    await buildStarted(build);
    assert.ok(existsSync(join(i.runtimeDir, 'ssh')), "Nix's ssh shares one connection");
    const stopped = await box.run(['--name', i.name, 'stop']);
    assert.equal(stopped.code, 0, stopped.stderr);
    const result = await build.result;
    assert.notEqual(result.code, 0, 'the build failed');
    assert.match(result.stderr, /^error: .*slow-stopped/m, result.stderr);
    assert.deepEqual(instanceProcesses(i), []);
    assert.deepEqual(fileNames(i.runtimeDir), []);
    const { json: s } = await i.status();
    assert.equal(s.state, 'stopped');
    assert.match(s.lastExit?.reason ?? '', /by "linux-builder stop"/);
  });

  await t.test('state.json torn while stopped: status names the file and what to do; start replaces it', async () => {
    writeFileSync(statePath, torn);
    const { code, json: s } = await i.status();
    assert.equal(code, 1);
    assert.equal(s.state, 'broken');
    assert.deepEqual(s.reasons, [
      `${statePath} is not valid JSON; no VM of this instance runs: "linux-builder --name bare start" replaces the file (or remove it: rm ${statePath})`,
    ]);
    assert.match(await i.statusText(), new RegExp(`note .*${statePath} is not valid JSON`));
    const again = await box.run(['--name', i.name, 'start']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, new RegExp(`${statePath} is not valid JSON; no VM of builder "bare" runs, so it is replaced`));
    assert.equal((await i.status()).json.state, 'running');
    assert.equal((await box.run(['--name', i.name, 'ssh', '--', 'true'])).code, 0);
  });

  await t.test('state.json torn while the VM runs: start refuses and says how; stop --force finds and stops the VM', async () => {
    const [pid] = vms(i);
    assert.ok(pid);
    writeFileSync(statePath, torn);
    const { json: s } = await i.status();
    assert.equal(s.state, 'broken');
    assert.match(s.reasons.join('\n'), new RegExp(`is not valid JSON, and the VM still runs \\(pid ${pid}\\): "linux-builder --name bare stop --force"`));
    const refused = await box.run(['--name', i.name, 'start']);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, new RegExp(`^linux-builder: cannot start builder "bare": ${statePath} is not valid JSON$`, 'm'));
    assert.match(refused.stderr, /^hint: .*stop --force" stops it/m);
    assert.deepEqual(vms(i), [pid], 'no second VM');
    const stopped = await box.run(['--name', i.name, 'stop', '--force']);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.deepEqual(instanceProcesses(i), []);
    assert.ok(!existsSync(statePath));
    assert.equal((await i.status()).json.state, 'stopped');
  });

  await t.test('the state dir removed while stopped: status says so; start boots fresh with new keys; Nix builds after nix-config --install', async () => {
    const oldKey = readFileSync(join(i.stateDir, 'id_ed25519.pub'), 'utf8');
    rmSync(i.stateDir, { recursive: true });
    const { json: s } = await i.status();
    assert.equal(s.state, 'stopped');
    assert.match(s.reasons.join('\n'), new RegExp(`^${i.stateDir} does not exist: .*"linux-builder --name bare start" creates them with new keys \\(then run "linux-builder --name bare nix-config --install" again\\)$`, 'm'));
    assert.ok(!existsSync(i.stateDir), 'status writes nothing');

    const again = await box.run(['--name', i.name, 'start', '--memory', '1G']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /builder "bare" has new SSH keys .*nix-config --install" again/);
    assert.notEqual(readFileSync(join(i.stateDir, 'id_ed25519.pub'), 'utf8'), oldKey);
    assert.equal(statSync(i.stateDir).mode & 0o777, 0o700);
    assert.equal((await i.status()).json.state, 'running');

    await installNixConfig(box, i);
    const result = await nixBuild(i.env, ['x86_64'], { busybox, nonce: `-fresh-state-${Date.now()}` });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(readFileSync(result.stdout.trim(), 'utf8'), 'built on x86_64\n');
  });
});
