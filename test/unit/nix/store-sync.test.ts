import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { candidatePaths, guestRegisterCommand, HostStoreUnreadable, hostRootsDir, nixStoreFailure, StoreSync } from '../../../src/nix/store-sync.js';

test('only store paths are candidates: no locks, no .links, no .drv', () => {
  const names = [
    '.links',
    'ns9s42sh24izrkay2prr59vvqykm4ppm-busybox-arm64',
    'hxhfr4vssis98rqrza6ykbxqpbmi3axf-too-big.lock',
    'fqgm9x5cvghkncxaf0p0ikwx3n3q950k-too-big.drv',
    'not-a-store-path',
  ];
  assert.deepEqual(candidatePaths(names), ['/nix/store/ns9s42sh24izrkay2prr59vvqykm4ppm-busybox-arm64']);
});

test('the guest registers, roots every host path against its own GC, then drops dentries', () => {
  const command = guestRegisterCommand(['/nix/store/a-x', '/nix/store/b-y']);
  assert.equal(
    command,
    [
      'nix-store --load-db',
      `mkdir -p ${hostRootsDir}`,
      `cd ${hostRootsDir}`,
      "ln -sfn '/nix/store/a-x' '/nix/store/b-y' .",
      'cd /nix/.rw-store/upper',
      `for p in 'a-x' 'b-y'; do if [ -c "$p" ]; then rm -f "$p"; fi; done`,
      'echo 2 > /proc/sys/vm/drop_caches',
    ].join(' && '),
  );
  assert.match(hostRootsDir, /^\/nix\/var\/nix\/gcroots\//);
});

test("nix-store denied access means this user cannot read the store; other failures stay plain errors", () => {
  const denied = nixStoreFailure('nix-store --check-validity', "error: could not set permissions on '/nix/var/nix/profiles/per-user' to 755: Operation not permitted\n");
  assert.ok(denied instanceof HostStoreUnreadable);
  assert.equal(denied.message, "this user cannot open the host's Nix store (nix-store --check-validity: could not set permissions on '/nix/var/nix/profiles/per-user' to 755: Operation not permitted)");
  assert.ok(nixStoreFailure('nix-store --dump-db', "error: opening lock file '/nix/var/nix/db/big-lock': Permission denied") instanceof HostStoreUnreadable);
  const other = nixStoreFailure('nix-store --dump-db', 'error: database disk image is malformed');
  assert.ok(!(other instanceof HostStoreUnreadable));
  assert.equal(other.message, 'nix-store --dump-db failed on the host: database disk image is malformed');
});

test('a store this user cannot read fails the first sync once; later syncs (the agent every 10 s) do nothing', async (t) => {
  if ((await readdir('/nix/store').catch(() => [])).length === 0) return t.skip('no host store here');
  const bin = await mkdtemp(join(tmpdir(), 'lb-fake-nix-'));
  const calls = join(bin, 'calls');
  // A nix-store that fails as Nix 2.8 does for a user who does not own a single-user store.
  await writeFile(join(bin, 'nix-store'), `#!/bin/sh\necho "$@" >> ${calls}\necho "error: could not set permissions on '/nix/var/nix/profiles/per-user' to 755: Operation not permitted" >&2\nexit 1\n`);
  await chmod(join(bin, 'nix-store'), 0o755);
  const path = process.env.PATH;
  process.env.PATH = `${bin}:${path ?? ''}`;
  try {
    const sync = new StoreSync(['false']);
    await assert.rejects(sync.sync(), HostStoreUnreadable);
    assert.deepEqual(await sync.sync(), { registered: 0, seconds: 0 });
    sync.forget(); // a reboot of the guest does not make the host store readable
    assert.deepEqual(await sync.sync(), { registered: 0, seconds: 0 });
    assert.equal((await readFile(calls, 'utf8')).trim().split('\n').length, 1, 'nix-store ran once');
  } finally {
    process.env.PATH = path;
    await rm(bin, { recursive: true, force: true });
  }
});
