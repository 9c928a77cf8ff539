import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock, lockHolder } from '../../../src/fs/lock.js';

test('a lock is exclusive while held and free after release', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lb-lock-'));
  const path = join(dir, 'lock');
  const first = await acquireLock(path, { timeoutMs: 1000 });
  assert.equal(await lockHolder(path), process.pid);
  let waited = false;
  const second = acquireLock(path, { timeoutMs: 5000, pollMs: 20, onWait: () => (waited = true) });
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.ok(waited);
  await first.release();
  const lock = await second;
  assert.equal((await readFile(path, 'utf8')).trim(), String(process.pid));
  await lock.release();
});

test('a lock left by a dead process is taken over', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lb-lock-'));
  const path = join(dir, 'lock');
  await writeFile(path, '999999999\n');
  const lock = await acquireLock(path, { timeoutMs: 1000 });
  assert.equal(await lockHolder(path), process.pid);
  await lock.release();
});

test('waiting past the timeout fails naming the holder', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lb-lock-'));
  const path = join(dir, 'lock');
  const held = await acquireLock(path, { timeoutMs: 1000 });
  await assert.rejects(acquireLock(path, { timeoutMs: 100, pollMs: 20 }), new RegExp(`pid ${process.pid}`));
  await held.release();
});

test('many takers in one process take the lock one after another', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lb-lock-'));
  const path = join(dir, 'lock');
  let inside = 0;
  let most = 0;
  await Promise.all(Array.from({ length: 20 }, async () => {
    const lock = await acquireLock(path, { timeoutMs: 10_000, pollMs: 5 });
    inside++;
    most = Math.max(most, inside);
    await new Promise((resolve) => setTimeout(resolve, 2));
    inside--;
    await lock.release();
  }));
  assert.equal(most, 1);
});
