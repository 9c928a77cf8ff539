import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UserError } from '../../../src/errors.js';
import { decideAccel, probeAccelFacts, type AccelFacts } from '../../../src/drivers/qemu/accel.js';
import type { AccelChoice } from '../../../src/drivers/driver.js';

const vmxCpu = 'processor\t: 0\nflags\t\t: fpu vme de pse tsc msr vmx ept\n';
const svmCpu = 'processor\t: 0\nflags\t\t: fpu svm npt\n';
// This machine kind: a PVM /dev/kvm under Firecracker, no vmx/svm (svm_lock is not svm).
const pvmCpu = 'processor\t: 0\nflags\t\t: fpu vme de pse tsc msr hypervisor svm_lock\nbugs\t\t: vmx_leak\n';

function facts(overrides: Partial<AccelFacts> = {}): AccelFacts {
  return { platform: 'linux', arch: 'x86_64', kvmAccess: 'rw', cpuinfo: vmxCpu, ...overrides };
}

const chosen: ReadonlyArray<{ name: string; requested: AccelChoice; facts: AccelFacts; accel: string; reason: RegExp }> = [
  { name: 'x86 Linux, rw /dev/kvm, vmx → kvm', requested: 'auto', facts: facts(), accel: 'kvm', reason: /KVM/ },
  { name: 'x86 Linux, rw /dev/kvm, svm → kvm', requested: 'auto', facts: facts({ cpuinfo: svmCpu }), accel: 'kvm', reason: /KVM/ },
  {
    name: 'x86 Linux, PVM /dev/kvm without vmx/svm → tcg, saying why',
    requested: 'auto',
    facts: facts({ cpuinfo: pvmCpu }),
    accel: 'tcg',
    reason: /^\/dev\/kvm exists but the CPU has no vmx\/svm .*: using TCG$/,
  },
  { name: 'no /dev/kvm → tcg', requested: 'auto', facts: facts({ kvmAccess: 'missing' }), accel: 'tcg', reason: /does not exist: using TCG/ },
  { name: '/dev/kvm not rw → tcg', requested: 'auto', facts: facts({ kvmAccess: 'denied' }), accel: 'tcg', reason: /kvm group/ },
  {
    name: 'PVM /dev/kvm not rw → tcg for the CPU, not the group (joining kvm would not help)',
    requested: 'auto',
    facts: facts({ kvmAccess: 'denied', cpuinfo: pvmCpu }),
    accel: 'tcg',
    reason: /^\/dev\/kvm exists but the CPU has no vmx\/svm/,
  },
  { name: 'no cpuinfo at all on x86 → tcg', requested: 'auto', facts: facts({ cpuinfo: undefined }), accel: 'tcg', reason: /vmx\/svm/ },
  { name: 'aarch64 Linux, rw /dev/kvm → kvm (no CPU flag needed)', requested: 'auto', facts: facts({ arch: 'aarch64', cpuinfo: 'Features\t: fp asimd\n' }), accel: 'kvm', reason: /KVM/ },
  { name: 'aarch64 Linux, no /dev/kvm → tcg', requested: 'auto', facts: facts({ arch: 'aarch64', kvmAccess: 'missing' }), accel: 'tcg', reason: /TCG/ },
  { name: 'macOS → hvf', requested: 'auto', facts: facts({ platform: 'darwin', arch: 'aarch64', kvmAccess: 'missing', cpuinfo: undefined }), accel: 'hvf', reason: /HVF/ },
  { name: 'explicit tcg wins even where KVM works', requested: 'tcg', facts: facts(), accel: 'tcg', reason: /requested/ },
  { name: 'explicit kvm where it works', requested: 'kvm', facts: facts(), accel: 'kvm', reason: /KVM/ },
  { name: 'explicit hvf on macOS', requested: 'hvf', facts: facts({ platform: 'darwin' }), accel: 'hvf', reason: /HVF/ },
];

for (const row of chosen) {
  test(row.name, () => {
    const decision = decideAccel(row.requested, row.facts);
    assert.equal(decision.accel, row.accel);
    assert.match(decision.reason, row.reason);
    assert.ok(!decision.reason.includes('\n'), 'one line');
  });
}

test('the kvm group fix comes only where joining it makes KVM work', () => {
  assert.match(decideAccel('auto', facts({ kvmAccess: 'denied' })).fix ?? '', /usermod -aG kvm/);
  assert.equal(decideAccel('auto', facts({ kvmAccess: 'denied', cpuinfo: pvmCpu })).fix, undefined);
  assert.equal(decideAccel('auto', facts({ kvmAccess: 'missing' })).fix, undefined);
  assert.throws(() => decideAccel('kvm', facts({ kvmAccess: 'denied' })), (error: unknown) => error instanceof UserError && /usermod/.test(error.hint ?? ''));
});

const refused: ReadonlyArray<{ name: string; requested: AccelChoice; facts: AccelFacts; message: RegExp; hint: RegExp }> = [
  { name: 'explicit kvm on a PVM device', requested: 'kvm', facts: facts({ cpuinfo: pvmCpu }), message: /--accel kvm cannot work here: .*no vmx\/svm/, hint: /--accel tcg/ },
  { name: 'explicit kvm without /dev/kvm', requested: 'kvm', facts: facts({ kvmAccess: 'missing' }), message: /does not exist/, hint: /--accel tcg/ },
  { name: 'explicit kvm on macOS', requested: 'kvm', facts: facts({ platform: 'darwin' }), message: /only on Linux/, hint: /hvf/ },
  { name: 'explicit hvf on Linux', requested: 'hvf', facts: facts(), message: /only on macOS/, hint: /tcg/ },
];

for (const row of refused) {
  test(`refused: ${row.name}`, () => {
    assert.throws(
      () => decideAccel(row.requested, row.facts),
      (error: unknown) =>
        error instanceof UserError && error.exitCode === 2 && row.message.test(error.message) && row.hint.test(error.hint ?? ''),
    );
  });
}

test('this host: the probe reads real facts and auto never picks kvm without vmx/svm', async () => {
  const probed = await probeAccelFacts('x86_64', 'linux');
  assert.equal(probed.platform, 'linux');
  const decision = decideAccel('auto', probed);
  const hasFlag = /^flags\s*:.*\s(vmx|svm)(\s|$)/m.test(probed.cpuinfo ?? '');
  if (!hasFlag) assert.equal(decision.accel, 'tcg');
});

test('a guest of another architecture runs only under TCG: auto picks it, kvm and hvf are bad input', () => {
  const emulated = decideAccel('auto', facts(), 'aarch64');
  assert.equal(emulated.accel, 'tcg');
  assert.match(emulated.reason, /^the guest is aarch64 and the host x86_64: only TCG emulates another architecture: using TCG$/);
  assert.equal(decideAccel('tcg', facts(), 'aarch64').accel, 'tcg');
  assert.throws(
    () => decideAccel('kvm', facts(), 'aarch64'),
    (e: unknown) => e instanceof UserError && e.exitCode === 2 && /--accel kvm cannot run an aarch64 guest on this x86_64 host/.test(e.message) && /--arch x86_64/.test(e.hint ?? ''),
  );
  assert.throws(() => decideAccel('hvf', facts({ platform: 'darwin', arch: 'x86_64' }), 'aarch64'), (e: unknown) => e instanceof UserError && e.exitCode === 2);
  assert.equal(decideAccel('auto', facts(), 'x86_64').accel, 'kvm', 'the host\'s own architecture is unchanged');
});
