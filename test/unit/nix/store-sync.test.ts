import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { askGuestMaxPaths, candidatePaths, guestKnownCommand, guestOwnLayerLoop, guestRegisterCommand, HostStoreUnreadable, hostRootsDir, maxGuestCommandBytes, nixStoreFailure, registrationChunks, StoreSync } from '../../../src/nix/store-sync.js';
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
    [
      'cd /nix/.rw-store/upper',
      'own=1',
      `for p in 'a-x' 'b-y'; do if { [ ! -e "$p" ] && [ ! -L "$p" ]; } || [ -c "$p" ]; then own=; fi; done`,
      'if [ -n "$own" ]; then exec /bb/cat > /dev/null; fi',
      'nix-store --load-db',
      `/bb/mkdir -p ${hostRootsDir}`,
      `cd ${hostRootsDir}`,
      "/bb/ln -sfn '/nix/store/a-x' '/nix/store/b-y' .",
      'cd /nix/.rw-store/upper',
      `for p in 'a-x' 'b-y'; do if [ -c "$p" ]; then /bb/rm -f "$p"; fi; done`,
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
  // Whatever the store held before (a fresh one has only .links): at least one path to register.
  addRandomFiles(1, 64, 'unreadable');
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
    assert.deepEqual(await sync.sync(), { registered: 0, seconds: 0, inGuest: 0 });
    sync.forget(); // a reboot of the guest does not make the host store readable
    assert.deepEqual(await sync.sync(), { registered: 0, seconds: 0, inGuest: 0 });
    assert.equal((await readFile(calls, 'utf8')).trim().split('\n').length, 1, 'nix-store ran once');
  } finally {
    process.env.PATH = path;
    await rm(bin, { recursive: true, force: true });
  }
});

/**
 * The host's real Nix store and nix-store, with a fake guest: a command that records the paths it
 * was asked to register, and holds each run at a gate until the test opens it.
 */
function fakeGuest(): { argv: string[]; started: () => boolean; open: () => void; registered: () => string } {
  const dir = mkdtempSync(join(tmpdir(), 'lb-sync-'));
  const [started, gate, log] = [join(dir, 'started'), join(dir, 'gate'), join(dir, 'registered')];
  // Asked through its long-lived shell, it holds nothing in its own layer.
  // It holds no database from an earlier boot.
  const script = `case "$1" in *'while read'*) while read -r names; do echo ". $names"; done; exit;; '[ -s '*) exit 1;; esac; touch ${started}; while [ ! -e ${gate} ]; do sleep 0.05; done; cat > /dev/null; echo "$1" >> ${log}`;
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
  addRandomFiles(1, 64, 'present'); // a fresh store has nothing to register: no run would start
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
  addRandomFiles(1, 64, 'present'); // a fresh store has nothing to register: no run would start
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
  addRandomFiles(1, 64, 'present'); // a fresh store has nothing to register: no run would start
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

test('registration chunks keep every guest command under the kernel\'s 128 KiB limit for one argument', () => {
  // 5000 host paths of realistic length: 2000 at once made a 330 KiB command (spawn E2BIG).
  const paths = Array.from({ length: 5000 }, (_, i) => `/nix/store/${String(i).padStart(32, 'a')}-python3.11-some-package-${i}-1.2.3`);
  const chunks = registrationChunks(paths);
  assert.deepEqual(chunks.flat(), paths, 'every path once, in order');
  for (const chunk of chunks) assert.ok(Buffer.byteLength(guestRegisterCommand(chunk)) <= maxGuestCommandBytes, `${chunk.length} paths`);
  assert.ok(maxGuestCommandBytes < 128 * 1024);
  assert.ok(chunks.length <= 60, `${chunks.length} chunks`);
});

function dumpsOfThisProcess(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(/^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${entry}/status`, 'utf8'))?.[1]);
      if (ppid === process.pid && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('--dump-db')) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

for (const [why, argv, said] of [
  // spawn throws E2BIG at once: nothing ever reads the dump.
  ['cannot start (an argument over 128 KiB)', ['true', 'x'.repeat(200 * 1024)], /registering host paths in the guest failed: spawn E2BIG/],
  ['fails without reading the dump', ['sh', '-c', 'exit 3', 'fake-ssh'], /registering host paths in the guest failed \(exit 3\)/],
] as const) {
  test(`a guest command that ${why} fails the sync and leaves no nix-store --dump-db behind`, { timeout: 30_000 }, async () => {
    // Enough paths for a dump larger than a pipe's 64 KiB (a few hundred bytes each).
    const have = candidatePaths(readdirSync('/nix/store')).length;
    if (have < 400) addRandomFiles(400 - have, 16, 'dump');
    const sync = new StoreSync(argv);
    await assert.rejects(sync.sync(), said);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(dumpsOfThisProcess(), []);
  });
}

/**
 * A fake guest whose own layer is a directory here: its shell loop (the real command, run by sh
 * with the layer's path swapped in) answers from that directory; asked for the host paths its
 * database holds, it lists the file `roots` (none when there is no such file); any other command
 * records the paths it was asked to register. Each start of the loop is counted.
 */
function guestWithLayer(loop = ''): { argv: string[]; layer: string; roots: string; registered: () => string; loops: () => number } {
  const dir = mkdtempSync(join(tmpdir(), 'lb-layer-'));
  const layer = join(dir, 'upper');
  mkdirSync(layer);
  const [log, starts, roots] = [join(dir, 'registered'), join(dir, 'loops'), join(dir, 'roots')];
  const script = [
    `case "$1" in *'while read'*) echo >> ${starts}; ${loop || `eval "$(printf '%s' "$1" | sed 's#/nix/.rw-store/upper#${layer}#')"`};;`,
    `'[ -s '*) cat ${roots} 2>/dev/null || exit 1;;`,
    `*) cat > /dev/null; echo "$1" >> ${log};; esac`,
  ].join(' ');
  return {
    argv: ['sh', '-c', script, 'fake-ssh'],
    layer,
    roots,
    registered: () => (existsSync(log) ? readFileSync(log, 'utf8') : ''),
    loops: () => (existsSync(starts) ? readFileSync(starts, 'utf8').split('\n').length - 1 : 0),
  };
}

test('the guest shell loop answers with the names not in its own layer, read unglobbed', () => {
  const loop = guestOwnLayerLoop();
  assert.match(loop, /^set -f; cd \/nix\/\.rw-store\/upper \|\| exit 1; while read -r names;/);
  const guest = guestWithLayer();
  mkdirSync(join(guest.layer, 'a-x'));
  writeFileSync(join(guest.layer, 'b?y'), '');
  const answers = execFileSync(guest.argv[0]!, [...guest.argv.slice(1), loop], { input: 'a-x\na-x b?y\na-x c-z\nb*\n', encoding: 'utf8' });
  assert.deepEqual(answers.split('\n'), ['.', '.', '. c-z', '. b*', '']);
});

test('a few new paths the guest holds in its own layer (its outputs, copied back) are not registered again', async (t) => {
  addRandomFiles(1, 64, 'present'); // the boot's registration: the usual way
  const guest = guestWithLayer();
  const sync = new StoreSync(guest.argv, undefined, true);
  t.after(() => sync.close());
  const first = await sync.sync();
  assert.ok(first.registered > 0);
  assert.equal(first.inGuest, 0, 'the first registration never asks');
  assert.equal(guest.loops(), 1, 'the shell started with it');

  const [built] = addRandomFiles(1, 64, 'built');
  assert.ok(built);
  mkdirSync(join(guest.layer, built.slice('/nix/store/'.length)));
  const before = guest.registered();
  const second = await sync.sync();
  assert.deepEqual([second.registered, second.inGuest], [1, 1]);
  assert.equal(guest.registered(), before, 'no registration command ran');
  assert.equal((await sync.pending()).includes(built), false);

  const [hostOnly] = addRandomFiles(1, 64, 'host-only');
  assert.ok(hostOnly);
  const third = await sync.sync();
  assert.deepEqual([third.registered, third.inGuest], [1, 0]);
  assert.ok(guest.registered().includes(hostOnly), 'a path the guest lacks is registered');
  assert.equal(guest.loops(), 1, 'one shell answered both');
});

test('a guest shell that cannot answer costs nothing but the usual registration, and is given up after three', async (t) => {
  addRandomFiles(1, 64, 'present');
  const guest = guestWithLayer('exit 1');
  const sync = new StoreSync(guest.argv, undefined, true);
  t.after(() => sync.close());
  await sync.sync();
  for (let i = 0; i < 5; i++) {
    const [path] = addRandomFiles(1, 64, `unanswered-${i}`);
    assert.ok(path);
    const result = await sync.sync();
    assert.equal(result.inGuest, 0);
    assert.ok(guest.registered().includes(path));
  }
  assert.equal(guest.loops(), 3);
  sync.forget(); // a new guest gets its chances again
  await sync.sync();
  const [path] = addRandomFiles(1, 64, 'after-reboot');
  assert.ok(path);
  await sync.sync();
  assert.ok(guest.loops() > 3);
});

test(`more than ${askGuestMaxPaths} new paths are registered without asking`, async (t) => {
  addRandomFiles(1, 64, 'present');
  const guest = guestWithLayer();
  const sync = new StoreSync(guest.argv, undefined, true);
  t.after(() => sync.close());
  await sync.sync();
  addRandomFiles(askGuestMaxPaths + 1, 16, 'many');
  const result = await sync.sync();
  assert.equal(result.inGuest, 0);
  assert.ok(guest.registered().split('\n').length > 2, 'registered the usual way');
});

test('a guest shell that never answers is given up after a few seconds: the sync registers the usual way', { timeout: 30_000 }, async (t) => {
  addRandomFiles(1, 64, 'present');
  const guest = guestWithLayer('cat > /dev/null');
  const sync = new StoreSync(guest.argv, undefined, true);
  t.after(() => sync.close());
  await sync.sync();
  const [path] = addRandomFiles(1, 64, 'unanswered');
  assert.ok(path);
  const result = await sync.sync();
  assert.equal(result.inGuest, 0);
  assert.ok(guest.registered().includes(path));
});

test('without keepGuestShell (a one-shot start) no guest shell is started', async () => {
  addRandomFiles(1, 64, 'present');
  const guest = guestWithLayer();
  const sync = new StoreSync(guest.argv);
  await sync.sync();
  addRandomFiles(1, 64, 'one-shot');
  assert.equal((await sync.sync()).inGuest, 0);
  assert.equal(guest.loops(), 0);
});

test('a boot registers only the host paths the guest\'s database does not hold from an earlier boot', async (t) => {
  const [old, gained] = [addRandomFiles(1, 64, 'registered-before')[0], addRandomFiles(1, 64, 'gained-since')[0]];
  assert.ok(old && gained);
  const guest = guestWithLayer();
  const held = candidatePaths(readdirSync('/nix/store')).filter((p) => p !== gained);
  writeFileSync(guest.roots, `${held.map((p) => p.slice('/nix/store/'.length)).join('\n')}\nnot-a-store-path\n`);
  const sync = new StoreSync(guest.argv, undefined, true);
  t.after(() => sync.close());
  // Other test files may add host paths meanwhile: what matters is what was registered.
  const result = await sync.sync();
  assert.ok(result.registered >= 1);
  assert.ok(guest.registered().includes(gained));
  assert.deepEqual(held.filter((p) => guest.registered().includes(p)), [], 'none of the paths the guest holds');
  sync.forget(); // rebooted: what the disk holds is read again
  const [later] = addRandomFiles(1, 64, 'after-reboot');
  assert.ok(later);
  const before = guest.registered();
  await sync.sync();
  const registered = guest.registered().slice(before.length);
  assert.ok(registered.includes(later) && registered.includes(gained), 'the path gained since, and the one registered before the reboot (no root for it in the fake)');
  assert.ok(!registered.includes(old));
});

test('the guest lists the host paths its database holds only when there is a database', () => {
  assert.equal(guestKnownCommand(), `[ -s /nix/var/nix/db/db.sqlite ] && cd ${hostRootsDir} && /bb/ls -A`);
});

test('a path the guest holds is known at once even next to one it lacks; a path the host never finished is not registered', async (t) => {
  addRandomFiles(1, 64, 'present');
  const guest = guestWithLayer();
  const sync = new StoreSync(guest.argv, undefined, true);
  t.after(() => sync.close());
  await sync.sync();
  // An output whose copy back was cut short: in the store, not valid on the host (nor in the guest).
  const junk = `/nix/store/${'0'.repeat(32)}-cut-short-${process.pid}-${Date.now()}`;
  writeFileSync(junk, 'partial');
  t.after(() => rm(junk, { force: true }));
  const [built] = addRandomFiles(1, 64, 'built-beside');
  assert.ok(built);
  mkdirSync(join(guest.layer, built.slice('/nix/store/'.length)));
  const before = guest.registered();
  const result = await sync.sync();
  assert.equal(result.inGuest, 1);
  assert.equal(guest.registered(), before, 'nothing registered: the one the guest lacks is not valid on the host');
  const pending = await sync.pending();
  assert.ok(pending.includes(junk) && !pending.includes(built));
});
