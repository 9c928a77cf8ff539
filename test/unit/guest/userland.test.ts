import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMirror, parseUserland } from '../../../src/config/values.js';
import { applyFlags, defaultSettings, parseSettings } from '../../../src/config/settings.js';
import { decideUserland, hostUserland, osReleaseIds, type HostUserlandFacts } from '../../../src/guest/userland.js';
import { binfmtLines, instanceSystems } from '../../../src/instance/guest-config.js';
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
