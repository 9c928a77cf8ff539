/**
 * Cold and warm builds through the agent: median wall time of a trivial aarch64-linux build with
 * the VM stopped (the build boots it) and running, next to the boot-to-ready time and a local
 * build of a trivial x86_64-linux derivation, all measured in the same run.
 *
 *   npm run bench:cold-build [-- --runs 5]
 * Targets: cold ≤ boot + warm + 0.5 s; warm − local ≤ 1.5 s.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sandbox } from '../test/support/cli.js';
import { agentEvents, freePort, startAgent } from '../test/support/agent.js';
import { arm64BusyboxStorePath } from '../test/support/busybox-static.js';
import { helloNix, nixBuild, nixEnv } from '../test/support/nix.js';
import { median, seconds, table } from './stats.js';

const runsFlag = process.argv.indexOf('--runs');
const runs = runsFlag > 0 ? Number(process.argv[runsFlag + 1]) : 5;
const box = sandbox();
const name = 'bench';
const alias = `linux-builder-${name}`;
const scopeDir = mkdtempSync(join(tmpdir(), 'lb-bench-'));
const scope = { nixConf: join(scopeDir, 'nix.conf'), sshConfig: join(scopeDir, 'ssh_config') };
const env = nixEnv(scope, box.env);
const busybox = await arm64BusyboxStorePath();

async function timed(attr: string, label: string): Promise<number> {
  const t0 = performance.now();
  const result = await nixBuild(env, [attr], { busybox, nonce: `-${label}-${Date.now()}` });
  if (result.code !== 0) throw new Error(`${label} build failed:\n${result.stderr}`);
  return performance.now() - t0;
}

function localBuild(): number {
  const t0 = performance.now();
  const result = spawnSync('nix-build', [
    '--no-out-link', '--option', 'substituters', '', '--builders', '', '--max-jobs', '1',
    helloNix, '-A', 'x86_64', '--argstr', 'nonce', `-local-${Date.now()}`,
  ], { env: { ...process.env }, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`local build failed:\n${result.stderr}`);
  return performance.now() - t0;
}

const closeShared = () => new Promise((resolve) => spawn('ssh', ['-F', scope.sshConfig, '-O', 'exit', alias], { stdio: 'ignore' }).on('exit', resolve));

const agent = await startAgent(box, name, ['--listen', `127.0.0.1:${await freePort()}`, '--idle-timeout', '1h']);
try {
  const installed = await box.run(['--name', name, 'nix-config', '--install', '--scope', 'user', '--nix-conf', scope.nixConf, '--ssh-config', scope.sshConfig]);
  if (installed.code !== 0) throw new Error(installed.stderr);
  await timed('aarch64', 'warm-up'); // kernel, image and busybox copy are not what is measured
  const cold: number[] = [];
  const warm: number[] = [];
  const local: number[] = [];
  for (let i = 0; i < runs; i++) {
    await closeShared();
    await box.run(['--name', name, 'stop']);
    await new Promise((resolve) => setTimeout(resolve, 1500)); // the agent notices the stop
    cold.push(await timed('aarch64', `cold${i}`));
    warm.push(await timed('aarch64', `warm${i}`));
    local.push(localBuild());
    process.stderr.write(`run ${i + 1}/${runs}: cold ${seconds(cold[i] ?? 0)} s, warm ${seconds(warm[i] ?? 0)} s, local ${seconds(local[i] ?? 0)} s\n`);
  }
  const boots = agentEvents(box, name)
    .filter((e) => e.event === 'boot-ready')
    .slice(1)
    .map((e) => Number(e.seconds) * 1000);
  const row = (label: string, values: number[]) => [label, seconds(median(values)), seconds(Math.min(...values)), seconds(Math.max(...values))];
  console.log(`\ncold/warm build benchmark: ${runs} runs, TCG (${new Date().toISOString().slice(0, 10)})\n`);
  console.log(
    table(['measure', 'median (s)', 'min (s)', 'max (s)'], [
      row('cold: aarch64 build, VM stopped (agent boots it)', cold),
      row('boot to ready (agent boot-ready)', boots),
      row('warm: aarch64 build, VM running', warm),
      row('local: x86_64 build on the host', local),
    ]),
  );
  const coldBudget = median(boots) + median(warm) + 500;
  console.log(`\ncold − (boot + warm): ${seconds(median(cold) - median(boots) - median(warm))} s (target ≤ 0.50: ${median(cold) <= coldBudget ? 'met' : 'missed'})`);
  console.log(`warm − local: ${seconds(median(warm) - median(local))} s (target ≤ 1.50: ${median(warm) - median(local) <= 1500 ? 'met' : 'missed'})`);
} finally {
  await closeShared();
  agent.child.kill('SIGTERM');
  await agent.exited;
}
