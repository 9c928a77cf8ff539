import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostUserland } from '../../../src/guest/userland.js';
import { guestPaths, inittab, rcBuilder } from '../../../src/guest/init.js';
import { powerButtonScript, shutdownScript } from '../../../src/guest/power.js';

const modules = { boot: [], shares: { '9p': [], virtiofs: [] }, pci: [], net: [], late: [], disk: [], vsock: [], power: [['evdev', 'gpio_keys']] };
const rc = rcBuilder({ modules, cache: 'loose', tools: hostUserland().tools });

function sh(script: string): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync('busybox', ['sh', '-c', script], { encoding: 'utf8', cwd: '/' });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** struct input_event on 64-bit: 16 bytes of time, u16 type, u16 code, s32 value. */
function inputEvent(type: number, code: number, value: number): Buffer {
  const event = Buffer.alloc(24);
  event.writeBigUInt64LE(1234n, 0);
  event.writeUInt16LE(type, 16);
  event.writeUInt16LE(code, 18);
  event.writeInt32LE(value, 20);
  return event;
}
const [EV_SYN, EV_KEY, KEY_POWER, KEY_A] = [0, 1, 116, 30];

/** The listener's own function, run by a real busybox sh on a file of events, with t and poweroff stubbed. */
function listenTo(events: Buffer[]): string {
  const script = powerButtonScript();
  const listen = script.slice(script.indexOf('listen() {'), script.indexOf('\n}\n') + 3);
  const device = join(mkdtempSync(join(tmpdir(), 'lb-power-')), 'event0');
  writeFileSync(device, Buffer.concat(events));
  const run = sh(`t() { echo "$*"; }\npoweroff() { echo POWEROFF; }\n${listen}\nlisten ${device} gpio-keys\necho "exit $?"`);
  assert.equal(run.stderr, '');
  return run.stdout.replaceAll(device, 'DEVICE');
}

test('busybox init runs shutdown.sh as its shutdown action', () => {
  assert.match(inittab(), new RegExp(`^::shutdown:${guestPaths.shutdownScript}$`, 'm'));
});

test('a KEY_POWER press on the power key powers the guest off; other keys, releases and SYN do not', () => {
  assert.equal(
    listenTo([inputEvent(EV_KEY, KEY_A, 1), inputEvent(EV_SYN, 0, 0), inputEvent(EV_KEY, KEY_POWER, 0), inputEvent(EV_KEY, KEY_POWER, 1), inputEvent(EV_SYN, 0, 0)]),
    'listening on DEVICE (gpio-keys)\npressed: powering off\nPOWEROFF\nexit 0\n',
  );
  assert.equal(
    listenTo([inputEvent(EV_KEY, KEY_A, 1), inputEvent(EV_KEY, KEY_POWER, 0), inputEvent(EV_KEY, KEY_POWER, 2)]),
    'listening on DEVICE (gpio-keys)\nDEVICE cannot be read\nexit 1\n',
    'no press, and the end of the events',
  );
});

test('the listener starts once the store is up, where a device tree describes the power key, after its modules', () => {
  const lines = rc.split('\n');
  const at = (pattern: RegExp): number => {
    const index = lines.findIndex((line) => pattern.test(line));
    assert.ok(index >= 0, `no line ${pattern}`);
    return index;
  };
  const listener = at(new RegExp(`^ {4}\\$power_button$`));
  assert.ok(at(/^if \[ -d \/sys\/firmware\/devicetree\/base \]; then$/) < listener);
  assert.ok(at(/^ {4}load evdev gpio_keys$/) < listener);
  assert.ok(at(/ overlay \/nix\/store /) < listener, 'the disk is mounted before a press can unmount it');
  assert.match(rc, new RegExp(`^power_button=${guestPaths.powerButton}$`, 'm'));
});

test('shutdown ends every process, then unmounts what sits on the disk before the disk, else makes it read-only', () => {
  const script = shutdownScript();
  const order = ['kill -TERM -1', 'for m in /tmp /nix/var/nix /nix/store $rw_store; do', 'kill -KILL -1', 'mount -o remount,ro $rw_store', 'sync'];
  const positions = order.map((text) => script.indexOf(text));
  assert.ok(positions.every((p) => p >= 0), positions.join(' '));
  assert.deepEqual([...positions].sort((a, b) => a - b), positions);
  assert.match(script, /^rw_store=\/nix\/\.rw-store$/m);
});
