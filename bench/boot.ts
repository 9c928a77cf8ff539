/**
 * Boot benchmark: median wall time of `linux-builder start` (command spawned → exits with the
 * guest ready over SSH), against a floor measured in the same run: the same kernel and QEMU
 * machine with an /init that only prints a marker and powers off (QEMU spawned → marker).
 * The guest's own share, from its init's first timing line to the ready marker (guest uptime,
 * read from the console), is shown beside them.
 *
 *   npm run bench:boot [-- --runs 5] [--arch aarch64] [--userland debian]
 *
 * With --arch aarch64 on an x86_64 host the guest is emulated (debian userland); the floor boots
 * the same arm64 kernel with the tree's busybox. --userland debian boots the host's architecture
 * with Debian's userland instead of the host's /usr (its kernel too, when the tree has one): the
 * floor boots that kernel.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { qemuDriver } from '../src/drivers/qemu/index.js';
import { waitForExit } from '../src/drivers/process.js';
import { floorMarker, buildFloorImage } from '../src/guest/image.js';
import { hostArch } from '../src/platform/host.js';
import { parseArch } from '../src/config/values.js';
import { runState } from './instance.js';
import { instancePaths, roots } from '../src/instance/paths.js';
import { readyMarker } from '../src/guest/layout.js';
import { median, seconds, table } from './stats.js';

const runsFlag = process.argv.indexOf('--runs');
const runs = runsFlag > 0 ? Number(process.argv[runsFlag + 1]) : 5;
const archFlag = process.argv.indexOf('--arch');
const arch = archFlag > 0 ? parseArch(process.argv[archFlag + 1] ?? '') : hostArch();
const memory = '1G';
const userlandFlag = process.argv.indexOf('--userland');
const userland = userlandFlag > 0 ? ['--userland', process.argv[userlandFlag + 1] ?? ''] : [];
const work = mkdtempSync('/tmp/lbb-');
// Boot alone: registering the host store after ready is measured by bench/cold-build.
const env = { ...process.env, XDG_STATE_HOME: join(work, 'state'), XDG_RUNTIME_DIR: join(work, 'run'), LINUX_BUILDER_SKIP_STORE_SYNC: '1' };
const cli = join(import.meta.dirname, '..', 'bin', 'linux-builder.js');
const name = 'bench';

function lb(args: string[]): { ms: number; stdout: string } {
  const t0 = performance.now();
  const result = spawnSync(process.execPath, [cli, '--name', name, ...args], { env, encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (result.status !== 0) throw new Error(`linux-builder ${args.join(' ')} failed:\n${result.stderr}`);
  return { ms, stdout: result.stdout };
}

/**
 * Milliseconds of guest uptime from rc's first timing line to the ready marker's, from the console;
 * NaN when the console has neither. Other writers to the console can split a line ("[" then "rc
 * 1.69] keys" on the next), so whitespace may stand between the parts. The guest's uptime runs on
 * jiffies under TCG (its TSC is marked unstable), which lag the wall clock when the host is busy.
 */
function guestInitToReady(): number {
  const consoleText = readFileSync(instancePaths(name, roots(env)).consoleLog, 'latin1');
  const uptimes = [...consoleText.matchAll(/\[\s*rc ([\d.]+)\]\s*(\S+)/g)];
  const first = Number(uptimes[0]?.[1]);
  const ready = Number(uptimes.find((m) => m[2] === readyMarker)?.[1]);
  return (ready - first) * 1000;
}

async function floorBoot(kernelPath: string, initrd: string, cores: number): Promise<number> {
  const dir = mkdtempSync(join(work, 'floor-'));
  const consoleLog = join(dir, 'console.log');
  const t0 = performance.now();
  const vm = await qemuDriver.launch({
    name: 'floor',
    hostArch: hostArch(),
    guestArch: arch,
    accel: 'tcg',
    cores,
    memoryMiB: 1024,
    kernel: { path: kernelPath, format: arch === 'aarch64' ? 'image' : kernelPath.includes('vmlinux') ? 'vmlinux-pvh' : 'bzImage' },
    initrd,
    kernelArgs: ['panic=-1', 'quiet'],
    devices: [{ kind: 'console', log: consoleLog }],
    processLog: join(dir, 'vm.log'),
  }, qemuDriver.control(dir));
  for (;;) {
    if (existsSync(consoleLog) && readFileSync(consoleLog, 'latin1').includes(floorMarker)) break;
    if (performance.now() - t0 > 120_000) throw new Error('floor never printed its marker');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const ms = performance.now() - t0;
  await waitForExit(vm.pid, 10_000);
  return ms;
}

// Warm-up: the kernel download, vmlinux extraction and image build are not what is measured.
lb(['start', '--memory', memory, '--arch', arch, ...userland, '--boot-timeout', '10m']);
const state = runState(env, name);
lb(['stop', '--force']);
// A Debian kernel boots from <tree>/root/boot: that tree's busybox runs in a guest of its architecture.
const floorBusybox = arch === hostArch() ? undefined : join(dirname(dirname(state.kernel)), 'usr/bin/busybox');
const floorImage = await buildFloorImage({ cacheDir: roots().cache, log: () => {}, ...(floorBusybox ? { busybox: floorBusybox } : {}) });

const starts: number[] = [];
const floors: number[] = [];
const guestInits: number[] = [];
for (let i = 0; i < runs; i++) {
  floors.push(await floorBoot(state.kernel, floorImage.path, state.cores));
  starts.push(lb(['start']).ms);
  guestInits.push(guestInitToReady());
  lb(['stop', '--force']);
  process.stderr.write(`run ${i + 1}/${runs}: start ${seconds(starts[i] ?? 0)} s (guest rc → ready ${seconds(guestInits[i] ?? 0)} s), floor ${seconds(floors[i] ?? 0)} s\n`);
}
const ratio = median(starts) / median(floors);
function guestRow(values: number[]): string[] {
  const label = `of start: guest rc → ready marker (uptime; ${values.length} of ${runs} consoles read)`;
  return values.length === 0 ? [label, '—', '—', '—'] : [label, seconds(median(values)), seconds(Math.min(...values)), seconds(Math.max(...values))];
}
console.log(`\nboot benchmark: ${runs} runs, ${arch} guest on ${hostArch()}${userland.length > 0 ? ` (${userland.join(" ")})` : ""}, TCG, ${state.cores} cores, ${memory} (${new Date().toISOString().slice(0, 10)})\n`);
console.log(
  table(
    ['measure', 'median (s)', 'min (s)', 'max (s)'],
    [
      ['`linux-builder start` → ready over SSH', seconds(median(starts)), seconds(Math.min(...starts)), seconds(Math.max(...starts))],
      ['floor: same kernel, /init prints a marker', seconds(median(floors)), seconds(Math.min(...floors)), seconds(Math.max(...floors))],
      guestRow(guestInits.filter(Number.isFinite)),
    ],
  ),
);
console.log(`\nratio start/floor: ${ratio.toFixed(2)} (target ≤ 1.5)`);
