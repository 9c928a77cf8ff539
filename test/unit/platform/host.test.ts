import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UserError } from '../../../src/errors.js';
import {
  hostArch,
  hostCpuCount,
  hostMemoryMiB,
  hostPlatform,
  hostTscKhz,
  tscKhzFromCpuinfo,
  tscKhzFromDmesg,
} from '../../../src/platform/host.js';

test('hostArch maps Node names to ours and refuses the rest', () => {
  assert.equal(hostArch('x64'), 'x86_64');
  assert.equal(hostArch('arm64'), 'aarch64');
  assert.throws(() => hostArch('riscv64'), (e: unknown) => e instanceof UserError && /riscv64/.test(e.message) && e.exitCode === 1);
  assert.ok(['x86_64', 'aarch64'].includes(hostArch()));
});

test('hostPlatform accepts Linux and macOS only', () => {
  assert.equal(hostPlatform('linux'), 'linux');
  assert.equal(hostPlatform('darwin'), 'darwin');
  assert.throws(() => hostPlatform('win32'), /unsupported host operating system: win32/);
});

test('cores and memory are positive whole numbers', () => {
  assert.ok(Number.isInteger(hostCpuCount()) && hostCpuCount() >= 1);
  assert.ok(Number.isInteger(hostMemoryMiB()) && hostMemoryMiB() > 0);
});

const dmesgTable: ReadonlyArray<[string, number | undefined]> = [
  ['[    0.000077] tsc: Detected 2596.132 MHz processor', 2596132],
  ['[    0.000000] tsc: Detected 3000.0 MHz processor', 3000000],
  ['[    0.000000] tsc: Detected 2400 MHz processor', 2400000],
  ['[    0.000000] tsc: Detected 1999.99999 MHz TSC', 1999999],
  ['[    0.1] clocksource: tsc-early: mask: 0xffffffffffffffff', undefined],
  ['', undefined],
];
for (const [line, khz] of dmesgTable) {
  test(`dmesg ${JSON.stringify(line)} → ${khz}`, () => assert.equal(tscKhzFromDmesg(`[0.0] Linux version 6\n${line}\n`), khz));
}

test('cpuinfo "cpu MHz" → kHz, first CPU', () => {
  assert.equal(tscKhzFromCpuinfo('processor\t: 0\ncpu MHz\t\t: 2596.132\nprocessor\t: 1\ncpu MHz\t\t: 1200.000\n'), 2596132);
  assert.equal(tscKhzFromCpuinfo('processor\t: 0\nFeatures\t: fp asimd\n'), undefined);
});

test('this host: a TSC frequency on x86_64 Linux', async (t) => {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    t.skip('x86_64 Linux only');
    return;
  }
  const khz = await hostTscKhz();
  assert.ok(khz !== undefined && khz > 100_000 && khz < 10_000_000, String(khz));
});
