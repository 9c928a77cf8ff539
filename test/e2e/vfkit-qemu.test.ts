/**
 * The vfkit driver with a real guest behind it: the fake vfkit (vfkit runs only on macOS) hands
 * the VM its command line describes to QEMU (test/support/vfkit-qemu-guest.ts): an aarch64 guest
 * under TCG with virtio-fs shares, the instance disk, a NAT network served by DHCP, a vsock
 * device through vhost-device-vsock, and the console on hvc0. So what the guest does on a Mac
 * runs here for real: SSH over vsock (the guest's socat relay, reached through the unix socket
 * and the ssh_config's ProxyCommand), its address from DHCP, builds by the host's Nix directly and
 * through the on-demand agent (which boots the VM through vfkit for the first build), and stop
 * (vfkit's REST Stop reaching the guest as its power key).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nixStoreAdd, processesMatching } from '../support/cli.js';
import { agentEvents, agentLogTail, freePort, startAgent } from '../support/agent.js';
import { fakeVfkitSandbox } from '../support/fake-vfkit-bin.js';
import { vhostDeviceVsock } from '../support/vhost-device-vsock.js';
import { staticBusyboxStorePath, type BusyboxSystem } from '../support/busybox-static.js';
import { copiedToBuilder, nixBuildInputs, nixEnv, probeLines, probeNix, runNixBuild } from '../support/nix.js';
import { waitForExit } from '../../src/drivers/process.js';

test('fake vfkit with a real aarch64 guest under QEMU: SSH over vsock, the address from DHCP, builds through nix-config and through the agent, stop through the power button', { timeout: 40 * 60_000 }, async (t) => {
  const name = 'qemumac';
  const { box, rest, status } = await fakeVfkitSandbox(name, { FAKE_VFKIT_GUEST: 'qemu', FAKE_VFKIT_VHOST_DEVICE_VSOCK: await vhostDeviceVsock() });
  const consoleLog = (): string => readFileSync(join(box.stateHome, 'linux-builder', name, 'console.log'), 'utf8');
  t.after(async () => {
    await box.run(['--name', name, 'stop', '--force']);
  });

  const started = await box.run(['--name', name, 'start', '--driver', 'vfkit', '--verbose'], { timeoutMs: 20 * 60_000 });
  assert.equal(started.code, 0, `${started.stderr}\n${consoleLog().slice(-3000)}`);
  assert.match(started.stdout, /builder "qemumac" is running/);

  await t.test('status: running on vfkit, SSH through the vsock socket', async () => {
    const s = await status();
    assert.equal(s.state, 'running', s.reasons.join('; '));
    assert.equal(s.driver, 'vfkit');
    assert.equal(s.ssh?.kind, 'unix');
    assert.deepEqual(processesMatching(`unix://${rest}`), [s.pid], 'one vfkit, named by its REST socket');
  });

  await t.test('the session arrives through the guest\'s vsock relay, and the guest took its address, route and DNS from DHCP', async () => {
    const ssh = await box.run(['--name', name, 'ssh', '--', 'sh', '-c', '"echo conn=$SSH_CONNECTION; ip -4 -o addr show scope global; ip route show default; cat /etc/resolv.conf"']);
    assert.equal(ssh.code, 0, ssh.stderr);
    // socat hands each vsock connection to sshd on the loopback: no network path reaches port 22
    assert.match(ssh.stdout, /^conn=127\.0\.0\.1 \d+ 127\.0\.0\.1 22$/m);
    assert.doesNotMatch(consoleLog(), /socat\[\d+\] E /, 'connections that end leave the console alone');
    // QEMU's user network: 10.0.2.15 leased, gateway 10.0.2.2, DNS 10.0.2.3; not the Mac's usual
    // 192.168.64.1 the plan names: the lease decides
    assert.match(ssh.stdout, /inet 10\.0\.2\.15\//);
    assert.match(ssh.stdout, /^default via 10\.0\.2\.2 /m);
    assert.match(ssh.stdout, /^nameserver 10\.0\.2\.3$/m);
    const rules = await box.run(['--name', name, 'ssh', '--', '/usr/sbin/ip', 'rule', 'show']);
    assert.equal(rules.code, 0, rules.stderr);
    assert.match(rules.stdout, /^101:.*to 10\.0\.2\.0\/24 .*prohibit/m, 'builds are kept off the leased subnet, where the host answers');
  });

  await t.test('the host\'s Nix builds aarch64-linux natively and x86_64-linux under qemu-user (no Rosetta here) in the guest\'s sandbox, through the ssh_config', async () => {
    const scopeDir = mkdtempSync(join(tmpdir(), 'lb-vq-'));
    const scope = { nixConf: join(scopeDir, 'nix.conf'), sshConfig: join(scopeDir, 'ssh_config') };
    const installed = await box.run(['--name', name, 'nix-config', '--install', '--scope', 'user', '--nix-conf', scope.nixConf, '--ssh-config', scope.sshConfig]);
    assert.equal(installed.code, 0, installed.stderr);
    assert.match(readFileSync(scope.sshConfig, 'utf8'), /ProxyCommand .*nc -U /);
    const nix = nixEnv(scope, box.env);
    const nonce = `-vq-${process.pid}-${Date.now()}`;
    const machines = { 'aarch64-linux': 'aarch64', 'x86_64-linux': 'x86_64' } as const;
    for (const system of Object.keys(machines) as (keyof typeof machines & BusyboxSystem)[]) {
      const busybox = await staticBusyboxStorePath(system);
      const built = await runNixBuild(nix, [
        '--max-jobs', '0', '--no-out-link', '--option', 'substituters', '', probeNix,
        '--arg', 'busybox', JSON.stringify(busybox), '--argstr', 'system', system, '--arg', 'port', '9',
        '--argstr', 'outside', '192.0.2.1 9',
        '--argstr', 'hidden', '/nix/store/00000000000000000000000000000000-absent', '--argstr', 'nonce', nonce,
      ]);
      assert.equal(built.code, 0, `${system}: ${built.stderr.slice(-3000)}`);
      const probe = probeLines(readFileSync(built.stdout.trim(), 'utf8'));
      assert.equal(probe.arch, machines[system]);
      assert.equal(probe.uid, '1000', 'a build user in the sandbox');
      assert.equal(probe['symlink-applet'], 'ok');
      assert.equal(probe['sh-applets'], 'ok');
      assert.equal(probe['proc-self-exe'], 'ok');
    }
  });

  await t.test('stop: REST Stop presses the power button, the guest shuts down and powers off, vfkit exits, nothing of the VM is left', async () => {
    const pid = (await status()).pid ?? 0;
    const stopped = await box.run(['--name', name, 'stop', '--verbose']);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.ok(await waitForExit(pid, 10_000));
    const s = await status();
    assert.equal(s.state, 'stopped');
    // vfkit's REST Stop, which the stand-in turns into the power key as Virtualization.framework's requestStop does
    assert.match(stopped.stderr, /pressed the guest's power button/);
    assert.doesNotMatch(stopped.stderr, /over SSH|killing/);
    const text = consoleLog();
    assert.match(text, /\[power-button [\d.]+\] pressed: powering off\r?$/m);
    assert.match(text, /\[shutdown [\d.]+\] disk unmounted\r?$/m);
    assert.match(text, /Requesting system poweroff/);
    assert.match(s.lastExit?.reason ?? '', /^powered off by "linux-builder stop"/);
    assert.deepEqual(processesMatching(`unix://${rest}`), []);
    assert.deepEqual(processesMatching('/tmp/lbvq-'), [], 'no QEMU, virtiofsd or vhost-device-vsock of the stand-in');
  });
  await t.test('the agent on vfkit: the first build boots the VM through vfkit and reaches the guest over vsock, an input made just before is registered, not copied; the agent\'s exit stops the VM', async () => {
    const port = await freePort();
    const agent = await startAgent(box, name, ['--listen', `127.0.0.1:${port}`, '--idle-timeout', '1h']);
    try {
      const scopeDir = mkdtempSync(join(tmpdir(), 'lb-vqa-'));
      const scope = { nixConf: join(scopeDir, 'nix.conf'), sshConfig: join(scopeDir, 'ssh_config') };
      const installed = await box.run(['--name', name, 'nix-config', '--install', '--scope', 'user', '--nix-conf', scope.nixConf, '--ssh-config', scope.sshConfig]);
      assert.equal(installed.code, 0, installed.stderr);
      assert.match(readFileSync(scope.sshConfig, 'utf8'), new RegExp(`\\n {2}Port ${port}\\n`), 'the alias points at the agent');
      assert.equal((await status()).state, 'stopped');
      const file = join(scopeDir, `late-${Date.now()}.txt`);
      writeFileSync(file, 'made just before the build\n');
      const late = nixStoreAdd(file);
      const built = await nixBuildInputs(nixEnv(scope, box.env), { busybox: await staticBusyboxStorePath('aarch64-linux'), inputs: [late], nonce: `-vqa-${Date.now()}` });
      assert.equal(built.code, 0, `${built.stderr.slice(-3000)}\n${agentLogTail(box, name)}`);
      assert.deepEqual(copiedToBuilder(built.stderr), [], 'the input is seen through the store share, not copied');
      const events = agentEvents(box, name).map((e) => e.event);
      assert.ok(events.includes('boot-start') && events.indexOf('connection-open') < events.indexOf('boot-start'), 'a connection booted the VM');
      assert.ok(events.includes('boot-ready'));
      const s = await status();
      assert.equal(s.state, 'running');
      assert.equal(s.driver, 'vfkit');
    } finally {
      agent.child.kill('SIGTERM');
      await agent.exited;
    }
    assert.deepEqual(processesMatching(`unix://${rest}`), [], 'the agent stops the VM it served when it exits');
    assert.deepEqual(processesMatching('/tmp/lbvq-'), []);
  });
});
