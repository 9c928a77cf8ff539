import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isTrusted, storeAccessCheck, usesSystemBuilders, type StoreAccessFacts } from '../../../src/doctor/nix-store.js';

const denied = "could not set permissions on '/nix/var/nix/profiles/per-user' to 755: Operation not permitted";

function facts(overrides: Partial<StoreAccessFacts> = {}): StoreAccessFacts {
  return {
    user: 'alice',
    groups: ['alice', 'users'],
    stateDir: '/nix/var/nix',
    stateDirOwner: 'root',
    stateDirWritable: false,
    daemonSocket: false,
    opens: true,
    trustedUsers: ['root'],
    ...overrides,
  };
}

const rows: ReadonlyArray<{ name: string; facts: StoreAccessFacts; verdict: string; detail: RegExp; fix?: RegExp }> = [
  {
    name: 'the store owner (single-user root, as root) opens it itself',
    facts: facts({ user: 'root', stateDirWritable: true }),
    verdict: 'ok',
    detail: /root opens the store itself/,
  },
  {
    name: "another user on root's single-user store, no daemon: cannot use Nix; says what would work",
    facts: facts({ opens: denied }),
    verdict: 'fail',
    detail: /single-user and belongs to root .*no nix-daemon runs: alice cannot use it \(nix-store: could not set permissions.*\)\. The VM still starts/,
    fix: /build as root; or install a multi-user Nix \(nix-daemon\) and add alice to trusted-users in \/etc\/nix\/nix\.conf; or give alice a Nix store of its own/,
  },
  {
    name: "multi-user Nix, untrusted user: the daemon builds with the system's builders, which apply to everyone",
    facts: facts({ daemonSocket: true }),
    verdict: 'ok',
    detail: /nix-daemon, which uses the system's builders for every user; alice's own builders would count only in trusted-users \(root\)/,
  },
  {
    name: 'multi-user Nix, trusted through a group: works, once root’s ssh can reach the builder',
    facts: facts({ daemonSocket: true, trustedUsers: ['root', '@users'] }),
    verdict: 'warn',
    detail: /alice is in trusted-users/,
    fix: /ssh as root.*nix-config --install --ssh-config \/etc\/ssh\/ssh_config/,
  },
  {
    name: 'a daemon socket nobody answers',
    facts: facts({ daemonSocket: true, opens: 'cannot connect to socket at /nix/var/nix/daemon-socket/socket: Connection refused' }),
    verdict: 'fail',
    detail: /socket exists, but nix-store fails for alice: cannot connect/,
    fix: /start nix-daemon/,
  },
  {
    name: 'readable but not writable, no daemon',
    facts: facts({ opens: true }),
    verdict: 'fail',
    detail: /can read the store but not write it/,
  },
];

for (const row of rows) {
  test(row.name, () => {
    const check = storeAccessCheck(row.facts);
    assert.equal(check.verdict, row.verdict);
    assert.match(check.detail, row.detail);
    if (row.fix) assert.match(check.fix ?? '', row.fix);
    if (row.verdict !== 'ok') assert.ok(check.fix, 'a problem comes with a fix');
  });
}

test('trusted-users: names, @groups and *', () => {
  assert.ok(isTrusted({ user: 'alice', groups: [], trustedUsers: ['alice'] }));
  assert.ok(isTrusted({ user: 'alice', groups: ['wheel'], trustedUsers: ['@wheel'] }));
  assert.ok(isTrusted({ user: 'alice', groups: [], trustedUsers: ['*'] }));
  assert.ok(!isTrusted({ user: 'alice', groups: ['users'], trustedUsers: ['root', '@wheel', 'alice2'] }));
});

test("only an untrusted user of a daemon it can reach is checked against the system's builders alone", () => {
  assert.equal(usesSystemBuilders(facts({ daemonSocket: true })), true);
  assert.equal(usesSystemBuilders(facts({ daemonSocket: true, trustedUsers: ['alice'] })), false, 'a trusted user brings builders of its own');
  assert.equal(usesSystemBuilders(facts({ daemonSocket: true, stateDirWritable: true })), false, 'opens the store itself');
  assert.equal(usesSystemBuilders(facts({ daemonSocket: true, opens: 'Connection refused' })), false);
  assert.equal(usesSystemBuilders(facts()), false);
});
