/**
 * Shares benchmark: the host's store in the guest over 9p against virtio-fs, in one run. Each run
 * boots the builder over one transport (LINUX_BUILDER_SHARES), then, with the guest's caches
 * dropped before each measure, reads a 512 MiB store input (a host path never read in the guest
 * before), walks the whole store with `find`, and reads the same 512 MiB from the guest's own
 * disk: the floor, the instance disk (ext4 on virtio-blk) in the same run. Times are taken in the
 * guest (/proc/uptime), so SSH is not in them; the boot is `linux-builder start`'s wall time.
 *
 *   npm run bench:shares [-- --runs 5] [--mib 512]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { addRandomStorePath } from '../test/support/store.js';
import { median, seconds, table } from './stats.js';

const flag = (name: string, fallback: number): number => {
  const at = process.argv.indexOf(name);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
};
const runs = flag('--runs', 5);
const mib = flag('--mib', 512);
const transports = ['9p', 'virtiofs'] as const;
type Transport = (typeof transports)[number];
const cli = join(import.meta.dirname, '..', 'bin', 'linux-builder.js');
const work = mkdtempSync('/tmp/lbsh-');

function lb(env: NodeJS.ProcessEnv, args: string[]): { ms: number; stdout: string } {
  const t0 = performance.now();
  const result = spawnSync(process.execPath, [cli, '--name', 'shares', ...args], { env, encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (result.status !== 0) throw new Error(`linux-builder ${args.join(' ')} failed:\n${result.stderr}`);
  return { ms, stdout: result.stdout };
}

/** Milliseconds the guest took for command, caches dropped first; measured in the guest. */
function inGuest(env: NodeJS.ProcessEnv, command: string): number {
  const script = `sync; echo 3 > /proc/sys/vm/drop_caches; read a _ < /proc/uptime; ${command} > /dev/null; read b _ < /proc/uptime; echo "$a $b"`;
  const [a, b] = lb(env, ['ssh', '--', script]).stdout.trim().split(' ').map(Number);
  return ((b ?? NaN) - (a ?? NaN)) * 1000;
}

interface Sample {
  boot: number;
  read: number;
  find: number;
  floor: number;
}

const input = await addRandomStorePath(mib, 'shares');
const samples: Record<Transport, Sample[]> = { '9p': [], virtiofs: [] };
let entries = '';
for (let run = 0; run < runs; run++) {
  for (const transport of transports) {
    // A fresh instance per run: the input is never in the guest's caches or on its disk before.
    const env = {
      ...process.env,
      XDG_STATE_HOME: join(work, `state-${transport}-${run}`),
      XDG_RUNTIME_DIR: join(work, `run-${transport}-${run}`),
      LINUX_BUILDER_SHARES: transport,
      LINUX_BUILDER_SKIP_STORE_SYNC: '1',
    };
    const boot = lb(env, ['start', '--memory', '1G', '--boot-timeout', '10m']).ms;
    try {
      const shares = (JSON.parse(lb(env, ['status', '--json']).stdout) as { shares: string }).shares;
      if (shares !== transport) throw new Error(`asked for ${transport}, the guest got ${shares}`);
      const read = inGuest(env, `cat ${input}`);
      const find = inGuest(env, 'find /nix/store');
      entries = lb(env, ['ssh', '--', 'find /nix/store | wc -l']).stdout.trim();
      lb(env, ['ssh', '--', `cp ${input} /nix/.rw-store/tmp/floor.bin`]);
      const floor = inGuest(env, 'cat /nix/.rw-store/tmp/floor.bin');
      samples[transport].push({ boot, read, find, floor });
      process.stderr.write(
        `run ${run + 1}/${runs} ${transport}: start ${seconds(boot)} s, read ${seconds(read)} s, find ${seconds(find)} s, floor ${seconds(floor)} s\n`,
      );
    } finally {
      lb(env, ['stop', '--force']);
    }
  }
}

const med = (transport: Transport, key: keyof Sample): number => median(samples[transport].map((s) => s[key]));
const row = (what: string, key: keyof Sample): string[] => [
  what,
  seconds(med('9p', key)),
  seconds(med('virtiofs', key)),
  (med('9p', key) / med('virtiofs', key)).toFixed(2),
];
console.log(`\nshares benchmark: ${runs} runs per transport, TCG, ${mib} MiB input, ${entries} entries under /nix/store (${new Date().toISOString().slice(0, 10)})\n`);
console.log(
  table(
    ['measure (median)', '9p (s)', 'virtio-fs (s)', '9p / virtio-fs'],
    [
      row(`read a ${mib} MiB store input (cold)`, 'read'),
      row('find over /nix/store (cold)', 'find'),
      row('`linux-builder start` → ready', 'boot'),
      row(`floor: read ${mib} MiB from the guest's disk`, 'floor'),
    ],
  ),
);
const floor = median([...samples['9p'], ...samples.virtiofs].map((s) => s.floor));
console.log(`\nread / floor: 9p ${(med('9p', 'read') / floor).toFixed(2)}, virtio-fs ${(med('virtiofs', 'read') / floor).toFixed(2)}`);
