/**
 * What Nix's sandbox costs a build in the guest: median wall time of a trivial build run by the
 * guest's Nix over SSH, with the sandbox (as every build runs) and without it (the floor, same
 * run, same VM), for aarch64-linux (Debian's arm64 busybox under qemu-user) and x86_64-linux.
 *
 *   npm run bench:sandbox [-- --runs 5]
 */
import { nixStoreAdd, sandbox } from '../test/support/cli.js';
import { arm64BusyboxStorePath } from '../test/support/busybox-static.js';
import { helloNix } from '../test/support/nix.js';
import { median, seconds, table } from './stats.js';

const runsFlag = process.argv.indexOf('--runs');
const runs = runsFlag > 0 ? Number(process.argv[runsFlag + 1]) : 5;
const box = sandbox();
const name = 'bench-sandbox';
const busybox = await arm64BusyboxStorePath();
// Added before the start, so the guest has it registered: no copying in what is measured.
const expression = nixStoreAdd(helloNix);

async function timed(attr: string, sandboxed: boolean, label: string): Promise<number> {
  const command = `nix-build --no-out-link --option sandbox ${sandboxed} ${expression} -A ${attr} --arg busybox ${busybox} --argstr nonce -${label}-${Date.now()}`;
  const t0 = performance.now();
  const result = await box.run(['--name', name, 'ssh', '--', command], { timeoutMs: 300_000 });
  if (result.code !== 0) throw new Error(`${label} failed:\n${result.stderr}`);
  return performance.now() - t0;
}

const started = await box.run(['--name', name, 'start', '--memory', '1G']);
if (started.code !== 0) throw new Error(started.stderr);
try {
  const samples: Record<string, number[]> = {};
  const add = (key: string, ms: number) => (samples[key] ??= []).push(ms);
  for (const attr of ['aarch64', 'x86_64']) await timed(attr, true, 'warm-up');
  for (let i = 0; i < runs; i++) {
    for (const attr of ['aarch64', 'x86_64']) {
      // Alternated, so a slower moment of the machine is shared by both.
      add(`${attr} sandbox`, await timed(attr, true, `on${i}`));
      add(`${attr} none`, await timed(attr, false, `off${i}`));
    }
    process.stderr.write(`run ${i + 1}/${runs} done\n`);
  }
  console.log(`\nsandbox benchmark: ${runs} runs, TCG (${new Date().toISOString().slice(0, 10)}): a trivial build by the guest's Nix over SSH\n`);
  const rows = ['aarch64', 'x86_64'].map((attr) => {
    const on = median(samples[`${attr} sandbox`] ?? []);
    const off = median(samples[`${attr} none`] ?? []);
    return [`${attr}-linux`, seconds(off), seconds(on), seconds(on - off), (on / off).toFixed(2)];
  });
  console.log(table(['system', 'no sandbox: floor (s)', 'sandbox (s)', 'cost (s)', 'ratio'], rows));
} finally {
  await box.run(['--name', name, 'stop', '--force']);
}
