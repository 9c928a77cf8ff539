/** doctor on a Mac, from injected facts: every verdict and its fix, on any host. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { macChecks, parseVersion, probeVfkit, type MacFacts } from '../../../src/doctor/macos.js';
import type { Check } from '../../../src/doctor/checks.js';
import { installFakeVfkit } from '../../support/fake-vfkit-bin.js';

const run = '/var/folders/xy/T/linux-builder-501/default';

function facts(overrides: Partial<MacFacts> = {}): MacFacts {
  return {
    appleSilicon: true,
    nodeTranslated: false,
    macosVersion: '14.6.1',
    vfkit: { path: '/opt/homebrew/bin/vfkit', version: 'v0.6.4', entitled: true },
    rosettaInstalled: true,
    nixDaemonRunning: true,
    socketPaths: [
      { what: 'REST socket', path: `${run}/vfkit.sock` },
      { what: 'SSH vsock socket', path: `${run}/ssh.sock` },
    ],
    ...overrides,
  };
}

function named(checks: readonly Check[], name: string): Check {
  const found = checks.find((c) => c.name === name);
  assert.ok(found, `no check ${name} in ${checks.map((c) => c.name).join(', ')}`);
  return found;
}

test('a ready Mac: every check passes', () => {
  const checks = macChecks(facts(), { rosetta: true });
  assert.deepEqual(checks.map((c) => c.name), ['mac', 'macos', 'vfkit', 'vfkit signature', 'rosetta', 'nix-daemon', 'socket paths']);
  for (const check of checks) assert.equal(check.verdict, 'ok', `${check.name}: ${check.detail}`);
  assert.equal(named(checks, 'vfkit').detail, '/opt/homebrew/bin/vfkit v0.6.4');
  assert.match(named(checks, 'rosetta').detail, /x86_64-linux builds run through Rosetta/);
});

const table: ReadonlyArray<{ name: string; facts: Partial<MacFacts>; rosetta?: boolean; check: string; verdict: Check['verdict']; detail: RegExp; fix?: RegExp }> = [
  { name: 'an Intel Mac', facts: { appleSilicon: false }, check: 'mac', verdict: 'fail', detail: /Intel Mac/, fix: /--driver qemu --arch x86_64/ },
  { name: 'Node under Rosetta', facts: { nodeTranslated: true }, check: 'mac', verdict: 'warn', detail: /x86_64 build running under Rosetta/, fix: /arm64 Node\.js/ },
  { name: 'macOS 12', facts: { macosVersion: '12.7.4' }, check: 'macos', verdict: 'fail', detail: /macOS 12\.7\.4: .*13 \(Ventura\) or later/, fix: /update macOS to 13/ },
  { name: 'macOS 13', facts: { macosVersion: '13.0' }, check: 'macos', verdict: 'ok', detail: /^macOS 13\.0$/ },
  { name: 'macOS 26', facts: { macosVersion: '26.1' }, check: 'macos', verdict: 'ok', detail: /^macOS 26\.1$/ },
  { name: 'no sw_vers answer', facts: { macosVersion: undefined }, check: 'macos', verdict: 'warn', detail: /could not read the macOS version/ },
  { name: 'no vfkit', facts: { vfkit: undefined }, check: 'vfkit', verdict: 'fail', detail: /vfkit not found on PATH/, fix: /brew install vfkit.*nixpkgs#vfkit/ },
  { name: 'vfkit 0.6.1 (no --pidfile)', facts: { vfkit: { path: '/usr/local/bin/vfkit', version: 'v0.6.1', entitled: true } }, check: 'vfkit', verdict: 'fail', detail: /v0\.6\.1 is too old: --pidfile came with vfkit 0\.6\.2/, fix: /brew upgrade vfkit/ },
  { name: 'vfkit 0.6.2', facts: { vfkit: { path: '/x/vfkit', version: '0.6.2-3-gabc', entitled: true } }, check: 'vfkit', verdict: 'ok', detail: /0\.6\.2-3-gabc/ },
  { name: 'vfkit 1.0', facts: { vfkit: { path: '/x/vfkit', version: 'v1.0.0', entitled: true } }, check: 'vfkit', verdict: 'ok', detail: /v1\.0\.0/ },
  { name: 'vfkit without a version', facts: { vfkit: { path: '/x/vfkit', version: undefined, entitled: true } }, check: 'vfkit', verdict: 'warn', detail: /could not read its version/ },
  { name: 'an unsigned vfkit', facts: { vfkit: { path: '/x/vfkit', version: 'v0.6.4', entitled: false } }, check: 'vfkit signature', verdict: 'fail', detail: /not signed with the com\.apple\.security\.virtualization entitlement/, fix: /Homebrew or nixpkgs/ },
  { name: 'codesign could not say', facts: { vfkit: { path: '/x/vfkit', version: 'v0.6.4', entitled: undefined } }, check: 'vfkit signature', verdict: 'warn', detail: /could not read/ },
  { name: 'Rosetta not installed', facts: { rosettaInstalled: false }, check: 'rosetta', verdict: 'warn', detail: /qemu-user/, fix: /^softwareupdate --install-rosetta --agree-to-license$/ },
  { name: 'Rosetta not wanted (--no-rosetta)', facts: { rosettaInstalled: false }, rosetta: false, check: 'rosetta', verdict: 'ok', detail: /--no-rosetta/ },
  { name: 'no nix-daemon', facts: { nixDaemonRunning: false }, check: 'nix-daemon', verdict: 'fail', detail: /nix-daemon socket/, fix: /^sudo launchctl kickstart -k system\/org\.nixos\.nix-daemon$/ },
  {
    name: 'a socket path over 103 bytes',
    facts: { socketPaths: [{ what: 'REST socket', path: `/${'x'.repeat(110)}/vfkit.sock` }] },
    check: 'socket paths', verdict: 'fail', detail: /over the 103-byte limit/, fix: /XDG_RUNTIME_DIR/,
  },
  {
    name: 'a socket path with a space',
    facts: { socketPaths: [{ what: 'SSH vsock socket', path: '/Users/ada/run dir/ssh.sock' }] },
    check: 'socket paths', verdict: 'fail', detail: /SSH vsock socket .*URL parsing/, fix: /XDG_RUNTIME_DIR/,
  },
];

for (const row of table) {
  test(`${row.name}: ${row.check} ${row.verdict}`, () => {
    const check = named(macChecks(facts(row.facts), { rosetta: row.rosetta ?? true }), row.check);
    assert.equal(check.verdict, row.verdict, check.detail);
    assert.match(check.detail, row.detail);
    if (row.fix) assert.match(check.fix ?? '', row.fix);
  });
}

test('versions: v-prefixed, git-describe and two-part', () => {
  assert.deepEqual(parseVersion('v0.6.4'), [0, 6, 4]);
  assert.deepEqual(parseVersion('0.6.2-5-gabcdef'), [0, 6, 2]);
  assert.deepEqual(parseVersion('14.6'), [14, 6, 0]);
  assert.equal(parseVersion('unknown'), undefined);
  assert.equal(parseVersion(undefined), undefined);
});

test('fake vfkit: the version is read from vfkit --version; codesign missing here leaves the signature unknown', async (t) => {
  const dir = await mkdtemp('/tmp/lbvfd-');
  t.after(() => rm(dir, { recursive: true, force: true }));
  await installFakeVfkit(dir);
  const found = await probeVfkit(dir);
  assert.equal(found?.path, join(dir, 'vfkit'));
  assert.equal(found?.version, 'v0.6.4');
  if (process.platform !== 'darwin') assert.equal(found?.entitled, undefined);
  assert.equal(await probeVfkit('/nonexistent'), undefined);
});
