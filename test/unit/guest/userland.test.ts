import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseArch, parseMirror, parseUserland } from '../../../src/config/values.js';
import { applyFlags, defaultSettings, guestArchOf, parseSettings } from '../../../src/config/settings.js';
import { decideUserland, hostUserland, osReleaseIds, type HostUserlandFacts } from '../../../src/guest/userland.js';
import { binfmtLines, guestNixConf, instanceSystems } from '../../../src/instance/guest-config.js';
import { hostArch } from '../../../src/platform/host.js';
import { binfmtEntry, systemInfo } from '../../../src/platform/systems.js';
import { UserError } from '../../../src/errors.js';

const debianHost: HostUserlandFacts = { distribution: ['debian'], staticBusybox: true, kernel: true, ipTool: true };

test('auto picks the host\'s /usr only where it can serve, and says why otherwise', () => {
  const cases: Array<[Partial<HostUserlandFacts>, 'host' | 'debian', RegExp]> = [
    [{}, 'host', /host's \/usr serves/],
    [{ distribution: ['ubuntu', 'debian'] }, 'host', /host's \/usr serves/],
    [{ distribution: ['nixos'] }, 'debian', /is not Debian or Ubuntu \(nixos\)/],
    [{ distribution: [] }, 'debian', /no \/etc\/os-release/],
    [{ staticBusybox: false }, 'debian', /no static busybox/],
    [{ kernel: false }, 'debian', /no kernel with modules and no apt/],
    [{ ipTool: false }, 'debian', /no \/usr\/sbin\/ip/],
  ];
  for (const [facts, kind, reason] of cases) {
    const decision = decideUserland('auto', { ...debianHost, ...facts });
    assert.equal(decision.kind, kind, JSON.stringify(facts));
    assert.match(decision.reason, reason);
  }
  assert.equal(decideUserland('debian', debianHost).kind, 'debian');
  assert.equal(decideUserland('host', { ...debianHost, distribution: ['fedora'] }).kind, 'host');
});

test('os-release IDs: ID and the words of ID_LIKE, quotes dropped', () => {
  assert.deepEqual(osReleaseIds('NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n'), ['ubuntu', 'debian']);
  assert.deepEqual(osReleaseIds('ID="rocky"\nID_LIKE="rhel centos fedora"\n'), ['rocky', 'rhel', 'centos', 'fedora']);
  assert.deepEqual(osReleaseIds(''), []);
});

test('--userland and --mirror are validated, remembered, and absent from an older config', () => {
  assert.equal(parseUserland('debian'), 'debian');
  assert.throws(() => parseUserland('nixos'), (e: unknown) => e instanceof UserError && e.exitCode === 2 && /auto, host, debian/.test(e.message));
  assert.equal(parseMirror('https://ftp.de.debian.org/debian/'), 'https://ftp.de.debian.org/debian');
  for (const bad of ['ftp://ftp.debian.org/debian', 'deb.debian.org', 'http://m/debian?x=1']) {
    assert.throws(() => parseMirror(bad), (e: unknown) => e instanceof UserError && e.exitCode === 2, bad);
  }
  const host = { cores: 4, memoryMiB: 8192 };
  const next = applyFlags(defaultSettings(host), { userland: 'debian', mirror: 'http://mirror.example/debian' }, host);
  assert.equal(next.userland, 'debian');
  assert.equal(next.mirror, 'http://mirror.example/debian');
  const old = { ...defaultSettings(host) } as Record<string, unknown>;
  delete old.userland;
  assert.equal(parseSettings(JSON.stringify(old), 'config.json').userland, 'auto');
});

test('binfmt entries name the emulator where the userland has it', () => {
  const systems = instanceSystems(undefined, 'x86_64');
  assert.match(binfmtLines(systems, 'x86_64')[0] ?? '', /:\/usr\/bin\/qemu-aarch64-static:POF$/);
  assert.match(binfmtLines(systems, 'x86_64', (info) => `/usr/bin/qemu-${info.qemuArch}`)[0] ?? '', /:\/usr\/bin\/qemu-aarch64:POF$/);
  assert.equal(hostUserland().usr, '/usr');
});

test('an aarch64 guest on an x86_64 host: auto and debian pick Debian\'s arm64 packages, host is bad input', () => {
  const arch = { guest: 'aarch64', host: 'x86_64' } as const;
  const auto = decideUserland('auto', debianHost, arch);
  assert.equal(auto.kind, 'debian', 'even where the host\'s /usr serves an x86_64 guest');
  assert.match(auto.reason, /^auto: Debian trixie arm64 packages .*because the guest is aarch64 and the host's \/usr x86_64$/);
  assert.equal(decideUserland('debian', debianHost, arch).kind, 'debian');
  assert.throws(
    () => decideUserland('host', debianHost, arch),
    (e: unknown) => e instanceof UserError && e.exitCode === 2 && /--arch aarch64 cannot use --userland host/.test(e.message) && /--userland debian/.test(e.hint ?? ''),
  );
  assert.equal(decideUserland('auto', debianHost, { guest: 'x86_64', host: 'x86_64' }).kind, 'host', 'the same architecture decides as before');
});

test('--arch is validated and remembered; --systems and the defaults put the guest\'s own system first', () => {
  assert.equal(parseArch('aarch64'), 'aarch64');
  assert.throws(() => parseArch('arm64'), (e: unknown) => e instanceof UserError && e.exitCode === 2 && /x86_64, aarch64/.test(e.message));
  const host = { cores: 4, memoryMiB: 8192 };
  assert.equal(guestArchOf(defaultSettings(host)), hostArch(), 'default: the host\'s');
  const next = applyFlags(defaultSettings(host), { arch: 'aarch64', systems: 'x86_64-linux,aarch64-linux' }, host);
  assert.equal(next.arch, 'aarch64');
  assert.deepEqual(next.systems, ['aarch64-linux', 'x86_64-linux']);
  assert.equal(parseSettings(JSON.stringify(next), 'config.json').arch, 'aarch64', 'survives config.json');
  assert.equal(parseSettings(JSON.stringify(defaultSettings(host)), 'config.json').arch, undefined, 'absent from an older config');
  assert.deepEqual(instanceSystems(undefined, 'aarch64'), ['aarch64-linux', 'x86_64-linux', 'i686-linux']);
  // remembered for an x86_64 guest, then --arch aarch64: the machines line and nix.conf lead with aarch64
  assert.deepEqual(instanceSystems(['x86_64-linux', 'i686-linux', 'aarch64-linux'], 'aarch64'), ['aarch64-linux', 'x86_64-linux', 'i686-linux']);
  assert.deepEqual(instanceSystems(['x86_64-linux', 'i686-linux', 'aarch64-linux'], 'x86_64'), ['x86_64-linux', 'i686-linux', 'aarch64-linux'], 'x86_64 unchanged');
});

test('an aarch64 guest: nix.conf names aarch64-linux, binfmt runs x86_64 and i686 through the userland\'s qemu-user', () => {
  const systems = instanceSystems(undefined, 'aarch64');
  const conf = guestNixConf({ systems, arch: 'aarch64', cores: 2, substituters: [] });
  assert.match(conf, /^system = aarch64-linux$/m);
  assert.match(conf, /^extra-platforms = x86_64-linux i686-linux$/m);
  const lines = binfmtLines(systems, 'aarch64', (info) => `/usr/bin/qemu-${info.qemuArch}`);
  assert.equal(lines.length, 2);
  const x86_64 = systemInfo('x86_64-linux');
  const i686 = systemInfo('i686-linux');
  assert.ok(x86_64 && i686);
  assert.deepEqual(lines, [binfmtEntry(x86_64, '/usr/bin/qemu-x86_64'), binfmtEntry(i686, '/usr/bin/qemu-i386')], "the table's magic and mask");
});
