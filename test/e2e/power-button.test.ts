/**
 * The guest as vfkit runs it, on QEMU: an aarch64 guest on virt, its network from DHCP (QEMU's
 * user network serves leases as vfkit's NAT does; LINUX_BUILDER_TEST_GUEST_DHCP has the guest
 * ask for one), and stop through its power button — QMP system_powerdown presses the same
 * gpio-keys power key Virtualization.framework's Stop does. The guest powers off by itself and
 * leaves its disk clean.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sandbox } from '../support/cli.js';
import { testDhcpVariable } from '../../src/instance/network.js';

test('aarch64 guest on virt with a DHCP lease: stop presses its power button, it powers off by itself, and its disk is clean though a file on it was open', { skip: process.arch !== 'x64' && 'needs an x86_64 host', timeout: 40 * 60_000 }, async (t) => {
  const base = sandbox();
  const env = { ...base.env, [testDhcpVariable]: '1' };
  const box = { ...base, run: (args: string[], options: { timeoutMs?: number } = {}) => base.run(args, { ...options, env }) };
  const name = 'button';
  const dir = join(box.stateHome, 'linux-builder', name);
  t.after(async () => {
    await box.run(['--name', name, 'stop', '--force']);
  });
  const started = await box.run(['--name', name, 'start', '--arch', 'aarch64', '--memory', '1G', '--boot-timeout', '10m'], { timeoutMs: 20 * 60_000 });
  assert.equal(started.code, 0, started.stderr);

  await t.test('the guest took its address, route and DNS from the DHCP server (udhcpc and its hook)', async () => {
    const guest = await box.run(['--name', name, 'ssh', '--', 'cat /proc/cmdline; ip -4 -o addr show dev eth0; ip -4 route show default; cat /etc/resolv.conf']);
    assert.equal(guest.code, 0, guest.stderr);
    assert.match(guest.stdout, /(^| )lb\.address=dhcp( |$)/m);
    assert.doesNotMatch(guest.stdout, /lb\.gateway=/);
    assert.match(guest.stdout, /^\d+: eth0 +inet 10\.0\.2\.15\/24 /m, 'QEMU\'s user network leases its first address');
    assert.match(guest.stdout, /^default via 10\.0\.2\.2 dev eth0/m);
    assert.match(guest.stdout, /^nameserver 10\.0\.2\.3$/m);
  });

  await t.test('the power key is gpio-keys on the device tree, and the listener holds it', async () => {
    // a file on the disk held open for writing when the button is pressed: without the
    // processes ended first, the disk could be neither unmounted nor made read-only
    const busy = '/bb/setsid /bb/sh -c "exec 3>>/tmp/held; exec /bb/sleep 1000" </dev/null >/dev/null 2>&1 & /bb/sleep 1; /bb/ls -l /proc/*/fd/3 | /bb/grep -c /tmp/held';
    const guest = await box.run(['--name', name, 'ssh', '--', `cat /sys/class/input/input*/name; /bb/ps w | /bb/grep "[p]ower-button"; echo kept > /tmp/power-button-marker; ${busy}`]);
    assert.equal(guest.code, 0, guest.stderr);
    assert.match(guest.stdout, /^gpio-keys$/m);
    assert.match(guest.stdout, /\/etc\/power-button/);
    assert.match(guest.stdout, /^1$/m, 'a process holds /tmp/held');
    assert.match(readFileSync(join(dir, 'console.log'), 'utf8'), /\[power-button [\d.]+\] listening on \/dev\/input\/event\d+ \(gpio-keys\)\r?$/m);
  });

  await t.test('stop presses the power button (system_powerdown); the guest shuts down cleanly and QEMU exits by itself', async () => {
    const stopped = await box.run(['--name', name, 'stop', '--verbose']);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stderr, /pressed the guest's power button/);
    assert.doesNotMatch(stopped.stderr, /over SSH|killing/);
    // the console's lines end in \r\n, and a press may come after init's console prompt
    const consoleText = readFileSync(join(dir, 'console.log'), 'utf8');
    assert.match(consoleText, /\[power-button [\d.]+\] pressed: powering off\r?$/m);
    assert.match(consoleText, /\[shutdown [\d.]+\] ending every process\r?$/m);
    assert.match(consoleText, /\[shutdown [\d.]+\] disk unmounted\r?$/m);
    assert.match(consoleText, /reboot: Power down/);
    const status = JSON.parse((await box.run(['--name', name, 'status', '--json'])).stdout) as { state: string; lastExit: { reason: string } | null };
    assert.equal(status.state, 'stopped');
    assert.match(status.lastExit?.reason ?? '', /^powered off by "linux-builder stop"/);
  });

  await t.test('the disk is clean: no journal to recover, and what the guest wrote is on it', () => {
    const disk = join(dir, 'disk.img');
    const header = execFileSync('dumpe2fs', ['-h', disk], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    assert.match(header, /^Filesystem state: +clean$/m);
    assert.doesNotMatch(header, /^Filesystem features:.*needs_recovery/m);
    assert.equal(execFileSync('debugfs', ['-R', 'cat /tmp/power-button-marker', disk], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }), 'kept\n');
  });
});
