import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseDriver, type DriverHost } from '../../../src/drivers/choose.js';
import { UserError } from '../../../src/errors.js';

const appleSilicon: DriverHost = { platform: 'darwin', arch: 'aarch64', vfkit: true };
const linux: DriverHost = { platform: 'linux', arch: 'x86_64', vfkit: false };

test('auto: vfkit on an Apple Silicon Mac that has it; QEMU on a Mac without it, on an Intel Mac, on Linux', () => {
  const table: [DriverHost, string, RegExp][] = [
    [appleSilicon, 'vfkit', /vfkit is installed/],
    [{ ...appleSilicon, vfkit: false }, 'qemu', /vfkit is not installed \(brew install vfkit\), so QEMU with HVF/],
    [{ platform: 'darwin', arch: 'x86_64', vfkit: true }, 'qemu', /Intel Mac/],
    [linux, 'qemu', /QEMU on Linux/],
    [{ ...linux, vfkit: true }, 'qemu', /QEMU on Linux/],
  ];
  for (const [host, name, reason] of table) {
    const decision = chooseDriver('auto', host, { dryRun: false });
    assert.equal(decision.name, name, JSON.stringify(host));
    assert.match(decision.reason, reason);
  }
});

test('--driver qemu anywhere; --driver vfkit on an Apple Silicon Mac, and off macOS only with --dry-run', () => {
  assert.equal(chooseDriver('qemu', appleSilicon, { dryRun: false }).name, 'qemu');
  assert.equal(chooseDriver('vfkit', appleSilicon, { dryRun: false }).name, 'vfkit');
  assert.match(chooseDriver('vfkit', linux, { dryRun: true }).reason, /planned for an Apple Silicon Mac/);
  assert.throws(
    () => chooseDriver('vfkit', linux, { dryRun: false }),
    (error: unknown) => error instanceof UserError && error.exitCode === 2 && /macOS only/.test(error.message) && /start --dry-run/.test(error.hint ?? ''),
  );
  assert.throws(() => chooseDriver('vfkit', { platform: 'darwin', arch: 'x86_64', vfkit: true }, { dryRun: false }), /Apple Silicon/);
});
