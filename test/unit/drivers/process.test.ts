import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { ExitInfo, RunningVm } from '../../../src/drivers/driver.js';
import { findOnPath, isAlive, killHard, listProcesses, processCommandLine, spawnDetached, waitForExit } from '../../../src/drivers/process.js';
import { UserError } from '../../../src/errors.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lb-process-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('spawnDetached: own process group, output in a 0600 log, exit reported', async () => {
  const log = join(dir, 'echo.log');
  await writeFile(log, 'old boot\n', { mode: 0o644 });
  const vm = await spawnDetached(['sh', '-c', 'echo out; echo err >&2; exit 3'], log);
  assert.ok(vm.pid > 0);
  assert.equal(vm.processLog, log);
  assert.deepEqual(await exitOf(vm), { code: 3, signal: null });
  assert.equal(await readFile(log, 'utf8'), 'out\nerr\n', 'truncated, both streams');
  assert.equal((await stat(log)).mode & 0o777, 0o600);
});

test('spawnDetached: a missing program is a UserError', async () => {
  await assert.rejects(spawnDetached(['/nonexistent/qemu-system-x86_64'], join(dir, 'missing.log')), (e: unknown) => e instanceof UserError && /could not start/.test(e.message));
});

test('isAlive, processCommandLine, killHard and waitForExit on a real process', async () => {
  const marker = `lb-process-test-${process.pid}`;
  const vm = await spawnDetached(['sh', '-c', 'sleep 30', marker], join(dir, 'sleep.log'));
  try {
    assert.equal(await isAlive(vm.pid), true);
    assert.ok((await processCommandLine(vm.pid))?.includes(marker));
    assert.equal(await waitForExit(vm.pid, 100), false, 'still running');
    killHard(vm.pid);
    assert.equal(await waitForExit(vm.pid, 5000), true);
    assert.equal(await isAlive(vm.pid), false);
    assert.equal((await exitOf(vm)).signal, 'SIGKILL');
    assert.equal(await processCommandLine(vm.pid), undefined);
    killHard(vm.pid); // already gone: no error
  } finally {
    killHard(vm.pid);
  }
});

// the shell runs a list, so it stays the process (a lone command may be exec'd in its place)
test('listProcesses: every process with its whole command line, a long one (40 KiB) included', async () => {
  const marker = `lb-list-test-${process.pid}`;
  const long = 'x'.repeat(40 * 1024);
  const short = await spawnDetached(['sh', '-c', 'sleep 30; :', marker, 'two words'], join(dir, 'short.log'));
  const big = await spawnDetached(['sh', '-c', 'sleep 30; :', marker, long], join(dir, 'long.log'));
  try {
    const listed = await listProcesses();
    assert.equal(listed.find((p) => p.pid === short.pid)?.commandLine, `sh -c sleep 30; : ${marker} two words`);
    assert.equal(listed.find((p) => p.pid === big.pid)?.commandLine, `sh -c sleep 30; : ${marker} ${long}`);
    assert.equal(await processCommandLine(big.pid), `sh -c sleep 30; : ${marker} ${long}`);
    assert.ok(listed.some((p) => p.pid === process.pid));
    assert.deepEqual(listed.map((p) => p.pid), [...listed.map((p) => p.pid)].sort((a, b) => a - b));
  } finally {
    killHard(short.pid);
    killHard(big.pid);
  }
});

test('findOnPath finds executables only', async () => {
  assert.match((await findOnPath('sh')) ?? '', /\/sh$/);
  assert.equal(await findOnPath('surely-not-a-command-lb'), undefined);
  await writeFile(join(dir, 'not-executable'), '', { mode: 0o644 });
  assert.equal(await findOnPath('not-executable', dir), undefined);
});

/** vm.exited does not keep the event loop alive; a timer does while we wait for it. */
function exitOf(vm: RunningVm): Promise<ExitInfo> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('no exit event within 10 s')), 10_000);
  });
  return Promise.race([vm.exited, deadline]).finally(() => clearTimeout(timer));
}
