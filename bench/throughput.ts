/**
 * Throughput through one agent with the VM running: N concurrent trivial aarch64-linux builds
 * (N = 1, 2, 4, 8; each a fresh derivation), in builds per minute and per-build latency; then real
 * work: gzip -6 of a 64 MiB input, on the host natively and through the builder as x86_64-linux
 * (the guest's own architecture, TCG) and aarch64-linux (qemu-user in the guest).
 *
 *   npm run bench:throughput [-- --rounds 3]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { sandbox } from '../test/support/cli.js';
import { freePort, startAgent } from '../test/support/agent.js';
import { arm64BusyboxStorePath, staticBusyboxStorePath } from '../test/support/busybox-static.js';
import { helloNix, nixEnv, runNixBuild } from '../test/support/nix.js';
import { median, percentile, seconds, table } from './stats.js';

const flag = (name: string, fallback: number): number => {
  const at = process.argv.indexOf(name);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
};
const rounds = flag('--rounds', 3);
const levels = [1, 2, 4, 8];
const box = sandbox();
const name = 'bench';
const scopeDir = mkdtempSync(join(tmpdir(), 'lb-bench-'));
const scope = { nixConf: join(scopeDir, 'nix.conf'), sshConfig: join(scopeDir, 'ssh_config') };
const env = nixEnv(scope, box.env);
const busybox = await arm64BusyboxStorePath();
const compressNix = join(import.meta.dirname, '..', 'test', 'fixtures', 'compress.nix');

async function build(argv: string[], label: string): Promise<number> {
  const t0 = performance.now();
  const result = await runNixBuild(env, ['--no-out-link', '--option', 'substituters', '', ...argv]);
  if (result.code !== 0) throw new Error(`${label} failed:\n${result.stderr}`);
  return performance.now() - t0;
}

const trivial = (nonce: string): string[] => ['--max-jobs', '0', helloNix, '--arg', 'busybox', JSON.stringify(busybox), '--argstr', 'nonce', nonce, '-A', 'aarch64'];

/** 64 MiB that compresses like real files do (not random, not zeros), added just before use. */
function compressibleInput(): string {
  const words = Array.from({ length: 4096 }, () => randomBytes(6).toString('base64url'));
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < 64 * 1024 * 1024; i++) {
    const line = `${i} ${words[i % 4096]} ${words[(i * 7) % 4096]} ${words[(i * 13) % 4096]} ${i * 31}\n`;
    lines.push(line);
    size += line.length;
  }
  const file = join(scopeDir, 'input.txt');
  writeFileSync(file, lines.join(''));
  const added = spawnSync('nix-store', ['--add', file], { encoding: 'utf8' });
  if (added.status !== 0) throw new Error(`nix-store --add failed: ${added.stderr}`);
  return added.stdout.trim();
}

const agent = await startAgent(box, name, ['--listen', `127.0.0.1:${await freePort()}`, '--idle-timeout', '1h']);
try {
  const installed = await box.run(['--name', name, 'nix-config', '--install', '--scope', 'user', '--nix-conf', scope.nixConf, '--ssh-config', scope.sshConfig]);
  if (installed.code !== 0) throw new Error(installed.stderr);
  await build(trivial(`-warmup-${Date.now()}`), 'warm-up'); // boots the VM and copies busybox

  const rows: string[][] = [];
  for (const n of levels) {
    const latencies: number[] = [];
    let wall = 0;
    for (let r = 0; r < rounds; r++) {
      const t0 = performance.now();
      const batch = await Promise.all(Array.from({ length: n }, (_, i) => build(trivial(`-n${n}-r${r}-${i}-${Date.now()}`), `build ${i} of ${n}`)));
      wall += performance.now() - t0;
      latencies.push(...batch);
    }
    const perMinute = (latencies.length / wall) * 60_000;
    rows.push([String(n), String(latencies.length), perMinute.toFixed(1), seconds(median(latencies)), seconds(percentile(latencies, 95))]);
    process.stderr.write(`${n} concurrent: ${perMinute.toFixed(1)} builds/min\n`);
  }

  const input = compressibleInput();
  const work: string[][] = [];
  const compress = (system: string, bb: string, where: 'host' | 'builder', i: number): Promise<number> =>
    build([
      ...(where === 'host' ? ['--builders', '', '--max-jobs', '1'] : ['--max-jobs', '0']),
      compressNix, '--arg', 'busybox', JSON.stringify(bb), '--arg', 'input', JSON.stringify(input),
      '--argstr', 'system', system, '--argstr', 'nonce', `-${where}-${system}-${i}-${Date.now()}`,
    ], `gzip on ${where} as ${system}`);
  const cases: [string, string, string, 'host' | 'builder'][] = [
    ['host, natively', 'x86_64-linux', await staticBusyboxStorePath('x86_64-linux'), 'host'],
    ['builder, x86_64-linux (TCG)', 'x86_64-linux', await staticBusyboxStorePath('x86_64-linux'), 'builder'],
    ['builder, aarch64-linux (TCG + qemu-user)', 'aarch64-linux', busybox, 'builder'],
  ];
  let floor = NaN;
  for (const [label, system, bb, where] of cases) {
    const times: number[] = [];
    for (let i = 0; i < rounds; i++) times.push(await compress(system, bb, where, i));
    if (where === 'host') floor = median(times);
    work.push([label, seconds(median(times)), (median(times) / floor).toFixed(1)]);
    process.stderr.write(`${label}: ${seconds(median(times))} s\n`);
  }

  console.log(`\nthroughput benchmark: trivial aarch64-linux builds, ${rounds} rounds per level, one agent, TCG (${new Date().toISOString().slice(0, 10)})\n`);
  console.log(table(['concurrent', 'builds', 'builds/min', 'median latency (s)', 'p95 latency (s)'], rows));
  console.log(`\ngzip -6 of a 64 MiB input, median of ${rounds} (each a fresh derivation; the builder's include copying the output back)\n`);
  console.log(table(['where', 'median (s)', '× host'], work));
} finally {
  agent.child.kill('SIGTERM');
  await agent.exited;
}
