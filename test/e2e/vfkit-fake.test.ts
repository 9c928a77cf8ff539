/**
 * start, status, ssh, stop, stop --force, a killed vfkit and the agent's adopt path through the
 * vfkit driver, against a fake vfkit (vfkit runs only on macOS): LINUX_BUILDER_TEST_FAKE_VFKIT
 * makes the driver run the fake on PATH as on an Apple Silicon Mac. The fake checks its argv
 * against vfkit's grammar and the files vfkit opens, serves vfkit's REST API, and stands in for
 * the guest where one would answer: an SSH server on the vsock socket with the instance's keys.
 * Everything of the guest itself is tested for real elsewhere (aarch64, rosetta).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { processesMatching } from '../support/cli.js';
import { fakeVfkitSandbox } from '../support/fake-vfkit-bin.js';
import { agentEvents, startAgent, waitFor } from '../support/agent.js';
import { waitForExit } from '../../src/drivers/process.js';

test('fake vfkit: start, status, ssh, stop, stop --force, a killed vfkit and the agent adopting its VM, through the vfkit driver', { timeout: 30 * 60_000 }, async (t) => {
  const name = 'fakemac';
  const { box, rest, status } = await fakeVfkitSandbox(name, {
    FAKE_VFKIT_GUEST: 'ssh',
    // the host's store registration runs nix-store in the guest: the stand-in has none
    LINUX_BUILDER_SKIP_STORE_SYNC: '1',
  });
  t.after(async () => {
    await box.run(['--name', name, 'stop', '--force']);
  });

  // the first arm64 start on a machine fetches Debian's arm64 packages
  const started = await box.run(['--name', name, 'start', '--driver', 'vfkit', '--verbose'], { timeoutMs: 20 * 60_000 });
  assert.equal(started.code, 0, started.stderr);
  assert.match(started.stdout, /builder "fakemac" is running: booted in [\d.]+ s \(hvf, /);
  assert.match(started.stderr, /Rosetta is not installed, so x86_64-linux runs under qemu-user/, 'this host has no Rosetta: qemu-user for x86_64');

  await t.test('status: running on vfkit, SSH through the vsock socket, the pid vfkit wrote', async () => {
    const s = await status();
    assert.equal(s.state, 'running', s.reasons.join('; '));
    assert.equal(s.driver, 'vfkit');
    assert.equal(s.ssh?.kind, 'unix');
    assert.equal(s.ssh?.path, join(box.runtimeDir, 'linux-builder', name, 'guest-ssh.sock'));
    assert.equal(readFileSync(join(box.runtimeDir, 'linux-builder', name, 'vm.pid'), 'utf8').trim(), String(s.pid));
    assert.deepEqual(processesMatching(`unix://${rest}`), [s.pid], 'one vfkit, named by its REST socket');
    const config = JSON.parse(readFileSync(join(box.stateHome, 'linux-builder', name, 'config.json'), 'utf8')) as { driver: string };
    assert.equal(config.driver, 'vfkit', 'remembered');
  });

  await t.test('ssh reaches the guest through the unix socket (ssh_config ProxyCommand), the host key pinned', async () => {
    const ssh = await box.run(['--name', name, 'ssh', '--', 'echo', 'over-vsock']);
    assert.equal(ssh.code, 0, ssh.stderr);
    assert.equal(ssh.stdout.trim(), 'over-vsock');
  });

  await t.test('stop: Stop through the REST API presses the guest\'s power button; the guest powers off, vfkit exits and removes its sockets', async () => {
    const pid = (await status()).pid ?? 0;
    const stopped = await box.run(['--name', name, 'stop', '--verbose']);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stderr, /pressed the guest's power button/);
    assert.doesNotMatch(stopped.stderr, /over SSH|killing/);
    assert.ok(await waitForExit(pid, 5000));
    const s = await status();
    assert.equal(s.state, 'stopped');
    assert.match(s.lastExit?.reason ?? '', /powered off by "linux-builder stop"/);
    assert.deepEqual(processesMatching(`unix://${rest}`), []);
  });

  await t.test('stop of a guest that ignores its power button: asked over SSH after a while, it powers off', async () => {
    const ignoring = { ...box.env, FAKE_VFKIT_IGNORE_STOP: '1' };
    assert.equal((await box.run(['--name', name, 'start'], { env: ignoring })).code, 0);
    const pid = (await status()).pid ?? 0;
    const stopped = await box.run(['--name', name, 'stop', '--verbose']);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stderr, /pressed the guest's power button\n.*did not power off within 15 s of its power button\n.*asking the guest to power off over SSH/s);
    assert.doesNotMatch(stopped.stderr, /killing/);
    assert.ok(await waitForExit(pid, 5000));
    assert.match((await status()).lastExit?.reason ?? '', /powered off by "linux-builder stop"/);
  });

  await t.test('stop --force: HardStop through the REST API', async () => {
    assert.equal((await box.run(['--name', name, 'start'])).code, 0);
    const pid = (await status()).pid ?? 0;
    const forced = await box.run(['--name', name, 'stop', '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.ok(await waitForExit(pid, 5000));
    const s = await status();
    assert.equal(s.state, 'stopped');
    assert.match(s.lastExit?.reason ?? '', /killed by "linux-builder stop --force"/);
    assert.doesNotMatch(readFileSync(join(box.stateHome, 'linux-builder', name, 'console.log'), 'utf8').split('fake vfkit:').at(-1) ?? '', /Power down/, 'no guest shutdown: the plug was pulled');
  });

  await t.test('a killed vfkit: status says it is gone; the next start removes its leftovers and boots', async () => {
    assert.equal((await box.run(['--name', name, 'start'])).code, 0);
    const pid = (await status()).pid ?? 0;
    process.kill(pid, 'SIGKILL');
    assert.ok(await waitForExit(pid, 5000));
    const s = await status();
    assert.notEqual(s.state, 'running');
    const again = await box.run(['--name', name, 'start']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal((await status()).state, 'running');
    assert.match((await status()).lastExit?.reason ?? '', /gone|without a stop|killed|crashed/);
  });

  await t.test('the agent started while the VM runs adopts it: no second vfkit', async () => {
    const pid = (await status()).pid;
    const agent = await startAgent(box, name, ['--idle-timeout', '1h']);
    try {
      await waitFor('vm-adopted', () => (agentEvents(box, name).some((e) => e.event === 'vm-adopted' && e.pid === pid) ? true : undefined), 30_000);
      assert.deepEqual(processesMatching(`unix://${rest}`), [pid]);
    } finally {
      agent.child.kill('SIGTERM');
      await agent.exited;
    }
    assert.deepEqual(processesMatching(`unix://${rest}`), [], 'the agent stops the VM it served when it exits');
  });
});
