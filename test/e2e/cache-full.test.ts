/**
 * The host's cache directory fills up while start assembles the guest: a small tmpfs is the
 * cache, first too small for the kernel, then for the guest image, then big enough. Each failed
 * start says so in one line naming the directory and leaves nothing behind; the last one boots.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { processesMatching, processesUsing, sandbox, type RunResult } from '../support/cli.js';
import { sharedKernel } from '../support/kernel.js';
import { prepareKernel } from '../../src/drivers/qemu/kernel.js';
import { roots } from '../../src/instance/paths.js';
import { hostArch } from '../../src/platform/host.js';

const name = 'full';
const memory = '1G';
const MiB = 2 ** 20;

function mountTmpfs(dir: string, bytes: number): void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${Math.ceil(bytes / 1024)}k,mode=0755`, 'tmpfs', dir]);
}

/** A remount keeps the files: only the limit changes, as when the user frees space. */
function resizeTmpfs(dir: string, bytes: number): void {
  execFileSync('mount', ['-o', `remount,size=${Math.ceil(bytes / 1024)}k`, dir]);
}

/** Every file under dir, relative to it. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => !entry.isDirectory())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

function assertOutOfSpace(result: RunResult, cache: string, what: RegExp): void {
  assert.equal(result.code, 1, result.stderr);
  const errors = result.stderr.split('\n').filter((line) => line.startsWith('linux-builder: '));
  assert.equal(errors.length, 1, result.stderr);
  assert.match(errors[0] ?? '', new RegExp(`^linux-builder: the cache directory ${cache} is out of space: `));
  assert.match(errors[0] ?? '', what);
  assert.match(result.stderr, /^hint: free space there, or point XDG_CACHE_HOME at a file system with more room \(.*MiB/m);
  assert.ok(!/\n\s+at /.test(result.stderr), 'no stack trace');
}

test(
  'a full cache: start fails naming the directory and what is free, leaves nothing half-written, and boots once there is room',
  { skip: process.getuid?.() === 0 ? false : 'mounting a small tmpfs as the cache needs root' },
  async (t) => {
    const kernel = await sharedKernel();
    // What the cache will hold for this kernel (on x86_64 the vmlinux extracted from the bzImage).
    const reference = await prepareKernel(kernel.image, roots().cache, hostArch());
    const box = sandbox();
    const mountPoint = mkdtempSync(join(tmpdir(), 'lb-cache-'));
    const cache = join(mountPoint, 'linux-builder');
    const env = { ...box.env, XDG_CACHE_HOME: mountPoint };
    const qmp = join(box.runtimeDir, 'linux-builder', name, 'qmp.sock');
    let mounted = false;
    t.after(async () => {
      await box.run(['--name', name, 'stop', '--force'], { env });
      if (mounted) {
        try {
          execFileSync('umount', [mountPoint]);
        } catch {
          execFileSync('umount', ['-l', mountPoint]);
        }
      }
      rmSync(mountPoint, { recursive: true, force: true });
    });
    const start = (): Promise<RunResult> => box.run(['--name', name, 'start', '--memory', memory, '--kernel', kernel.image], { env });
    const nothingRunning = (): void => {
      assert.deepEqual(processesMatching(qmp), [], 'no VM');
      assert.deepEqual(processesUsing(mountPoint), [], 'no process holds a file in the cache');
    };

    // Too small for anything: the kernel step (x86_64: the vmlinux; aarch64: sshd or the image) fails.
    mountTmpfs(mountPoint, 8 * MiB);
    mounted = true;
    const tooSmall = await start();
    assertOutOfSpace(tooSmall, cache, /\([\d.]+ MiB free of 8\.0 MiB\)$/);
    if (reference.format === 'vmlinux-pvh') assert.match(tooSmall.stderr, /out of space: unpacking kernel \S+ into kernels\//);
    assert.deepEqual(filesUnder(cache), [], 'no half-written vmlinux, no temp file, no "no PVH" marker');
    nothingRunning();

    if (reference.format === 'vmlinux-pvh') {
      // The kernel fits now, the guest image (about 20 MiB) does not.
      const vmlinuxBytes = statSync(reference.path).size;
      resizeTmpfs(mountPoint, vmlinuxBytes + 8 * MiB);
      const noRoomForImage = await start();
      assertOutOfSpace(noRoomForImage, cache, /: writing images\/guest-[0-9a-f]+\.cpio \(needs [\d.]+ MiB, [\d.]+ MiB free of [\d.]+ MiB\)$/);
      const files = filesUnder(cache);
      assert.deepEqual(files.filter((f) => f.startsWith('images/') || /\.tmp|\.download-/.test(f)), [], files.join('\n'));
      const vmlinux = files.filter((f) => f.startsWith('kernels/'));
      assert.equal(vmlinux.length, 1, files.join('\n'));
      assert.equal(statSync(join(cache, vmlinux[0] ?? '')).size, vmlinuxBytes, 'the vmlinux is whole');
      nothingRunning();
    }

    // Room enough: start works and boots what it wrote, whole.
    resizeTmpfs(mountPoint, 256 * MiB);
    const started = await start();
    assert.equal(started.code, 0, started.stderr);
    const run = JSON.parse(readFileSync(join(box.stateHome, 'linux-builder', name, 'state.json'), 'utf8')) as { initrd: string; kernel: string };
    assert.ok(run.initrd.startsWith(`${cache}/images/`), run.initrd);
    const initrd = readFileSync(run.initrd);
    assert.ok(initrd.lastIndexOf('TRAILER!!!') > initrd.length - 1024, 'the image ends with the cpio trailer');
    if (reference.format === 'vmlinux-pvh') assert.equal(statSync(run.kernel).size, statSync(reference.path).size);
    const uname = await box.run(['--name', name, 'ssh', '--', 'uname', '-m'], { env });
    assert.equal(uname.code, 0, uname.stderr);
    assert.deepEqual(filesUnder(cache).filter((f) => /\.tmp|\.download-/.test(f)), []);

    const stopped = await box.run(['--name', name, 'stop'], { env });
    assert.equal(stopped.code, 0, stopped.stderr);
    nothingRunning();
    // Fails with EBUSY if anything still holds the cache; a process stop ended may take a moment to go.
    await unmountWithin(mountPoint, 10_000);
    mounted = false;
  },
);

async function unmountWithin(mountPoint: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      execFileSync('umount', [mountPoint], { stdio: 'pipe' });
      return;
    } catch (error) {
      if (Date.now() > deadline) {
        let holders = '';
        try {
          holders = execFileSync('fuser', ['-vm', mountPoint], { encoding: 'utf8', stdio: 'pipe' });
        } catch (fuser) {
          holders = String((fuser as { stderr?: unknown }).stderr ?? '');
        }
        throw new Error(`${mountPoint} is still in use after stop: ${String((error as Error).message)}\n${holders}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}
