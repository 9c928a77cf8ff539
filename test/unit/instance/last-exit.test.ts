import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeExit, readLastExit, recordUnrequestedExit, writeLastExit } from '../../../src/instance/last-exit.js';

test('an exit nobody asked for is recorded, but never over the stop that caused it', async () => {
  const path = join(await mkdtemp(join(tmpdir(), 'lb-exit-')), 'last-exit.json');
  assert.equal(await readLastExit(path), null);
  const killed = await recordUnrequestedExit(path, { pid: 41, at: '2026-01-01T00:00:00.000Z', reason: 'killed by SIGKILL' });
  assert.deepEqual(killed, { pid: 41, at: '2026-01-01T00:00:00.000Z', requested: false, reason: 'killed by SIGKILL' });
  assert.deepEqual(await readLastExit(path), killed);

  const stopped = { pid: 42, at: '2026-01-01T00:01:00.000Z', requested: true, reason: 'stop requested by "linux-builder stop"' };
  await writeLastExit(path, stopped);
  assert.deepEqual(await recordUnrequestedExit(path, { pid: 42, at: '2026-01-01T00:01:01.000Z', reason: 'the guest powered off' }), stopped);
  assert.deepEqual(await readLastExit(path), stopped);
});

test('a corrupt last-exit.json reads as none: it only informs', async () => {
  const path = join(await mkdtemp(join(tmpdir(), 'lb-exit-')), 'last-exit.json');
  await writeFile(path, '{"version":1,"pid":');
  assert.equal(await readLastExit(path), null);
});

test('exit statuses in the user\'s words', () => {
  assert.equal(describeExit({ code: null, signal: 'SIGKILL' }), 'killed by SIGKILL');
  assert.match(describeExit({ code: 0, signal: null }), /powered off, rebooted or panicked/);
  assert.equal(describeExit({ code: 1, signal: null }), 'the VM process exited with code 1');
});
