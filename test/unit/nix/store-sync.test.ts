import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { candidatePaths, guestRegisterCommand, hostRootsDir, StoreSync } from '../../../src/nix/store-sync.js';
import { addRandomFiles } from '../../support/store.js';

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
    `nix-store --load-db && mkdir -p ${hostRootsDir} && cd ${hostRootsDir} && ln -sfn /nix/store/a-x /nix/store/b-y . && echo 2 > /proc/sys/vm/drop_caches`,
  );
  assert.match(hostRootsDir, /^\/nix\/var\/nix\/gcroots\//);
});

/**
 * The host's real Nix store and nix-store, with a fake guest: a command that records the paths it
 * was asked to register, and holds each run at a gate until the test opens it.
 */
function fakeGuest(): { argv: string[]; started: () => boolean; open: () => void; registered: () => string } {
  const dir = mkdtempSync(join(tmpdir(), 'lb-sync-'));
  const [started, gate, log] = [join(dir, 'started'), join(dir, 'gate'), join(dir, 'registered')];
  const script = `touch ${started}; while [ ! -e ${gate} ]; do sleep 0.05; done; cat > /dev/null; echo "$1" >> ${log}`;
  return {
    argv: ['sh', '-c', script, 'fake-ssh'],
    started: () => existsSync(started),
    open: () => writeFileSync(gate, ''),
    registered: () => (existsSync(log) ? readFileSync(log, 'utf8') : ''),
  };
}

async function until(what: string, probe: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('a sync asked for while one runs scans the store after it: a path the host gained meanwhile is registered', async () => {
  const guest = fakeGuest();
  const sync = new StoreSync(guest.argv);
  const first = sync.sync();
  await until('the first run to have scanned the store', guest.started);
  const [late] = addRandomFiles(1, 64, 'late');
  assert.ok(late);
  const second = sync.sync();
  guest.open();
  await Promise.all([first, second]);
  assert.ok(guest.registered().includes(late), 'the second caller\'s path was registered before its sync returned');
  assert.equal((await sync.pending()).includes(late), false);
});

test('forget() while a run is under way: the next sync registers that run\'s paths again (a rebooted guest needs them)', async () => {
  const guest = fakeGuest();
  const sync = new StoreSync(guest.argv);
  const first = sync.sync();
  await until('the first run to have scanned the store', guest.started);
  sync.forget();
  guest.open();
  const result = await first;
  assert.ok(result.registered > 0);
  const again = await sync.sync();
  assert.ok(again.registered >= result.registered, `registered ${again.registered} again, the first run ${result.registered}`);
});

test('each run is reported once, however many callers share it', async () => {
  const guest = fakeGuest();
  const reports: number[] = [];
  const sync = new StoreSync(guest.argv, (result) => reports.push(result.registered));
  const first = sync.sync();
  await until('the first run to have scanned the store', guest.started);
  addRandomFiles(1, 64, 'reported');
  const waiting = [sync.sync(), sync.sync(), sync.sync()];
  guest.open();
  await Promise.all([first, ...waiting]);
  assert.equal(reports.length, 2, `reports: ${reports.join(', ')}`);
});
