/**
 * Soak: N small builds for several systems, P at a time, by the host's Nix (`--max-jobs 0`)
 * through one agent whose idle timeout is short. The builds come in waves; the pauses between
 * waves straddle the idle timeout (well past it, just past it, just before it), so the VM stops
 * and boots again many times and some builds arrive while it is stopping. Each aarch64 build
 * reads an input the host store gained just before it, so the agent's registration of new host
 * paths runs under the same load. Prints builds done and failed (with each distinct failure
 * reason), builds whose input Nix copied instead of finding it registered, the boots and idle
 * stops from the agent's event log, and build latency (p50/p95/max), split by whether a build
 * overlapped a boot.
 *
 *   npm run bench:soak [-- --builds 200 --parallel 4 --idle-timeout 5s --wave 20 --keep]
 * Target: 0 failures, 0 inputs copied. The instance's files (agent.log, console.log) are kept
 * after a failure or Ctrl-C, or with --keep.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCount, parseDurationMs } from '../src/config/values.js';
import { sandbox } from '../test/support/cli.js';
import { agentEvents, freePort, startAgent, type LoggedEvent } from '../test/support/agent.js';
import { arm64BusyboxStorePath } from '../test/support/busybox-static.js';
import { copiedToBuilder, nixBuild, nixBuildInputs, nixEnv, type NixBuildResult } from '../test/support/nix.js';
import { addRandomFiles } from '../test/support/store.js';
import { median, percentile, seconds, table } from './stats.js';

const flag = (option: string, fallback: string): string => {
  const at = process.argv.indexOf(option);
  return at > 0 ? (process.argv[at + 1] ?? fallback) : fallback;
};
const builds = parseCount('--builds', flag('--builds', '200'), { min: 1, max: 100_000, hint: 'for example: --builds 20' });
const parallel = parseCount('--parallel', flag('--parallel', '4'), { min: 1, max: 64, hint: 'for example: --parallel 4' });
const waveSize = parseCount('--wave', flag('--wave', '20'), { min: 1, max: 100_000, hint: 'builds between two pauses, e.g. --wave 20' });
const idleText = flag('--idle-timeout', '5s');
const keep = process.argv.includes('--keep');
const idleMs = parseDurationMs('--idle-timeout', idleText, { min: 1000, max: 3_600_000 });
// Pause after each wave, relative to the idle timeout: a clean stop, a build right after the
// stop began, one while the guest powers off, one just before the stop, one just after.
const pauseOffsetsMs = [10_000, 300, 3000, -1000, 1000];

/** One derivation per system: hello.nix's, and for aarch64 inputs.nix's, with a fresh input. */
const systems = [
  { attr: 'aarch64', system: 'aarch64-linux', arch: 'aarch64' },
  { attr: 'i686', system: 'i686-linux', arch: 'i686' },
  { attr: 'x86_64', system: 'x86_64-linux', arch: 'x86_64' },
] as const;
const inputBytes = 4096;

interface Build {
  readonly index: number;
  readonly system: string;
  readonly startedAt: number;
  readonly endedAt: number;
  readonly ok: boolean;
  readonly failure: string;
  /** Store paths Nix copied to the builder: inputs the agent should have registered. */
  readonly copied: number;
}

const box = sandbox();
const name = 'soak';
const scopeDir = mkdtempSync(join(tmpdir(), 'lb-bench-'));
const scope = { nixConf: join(scopeDir, 'nix.conf'), sshConfig: join(scopeDir, 'ssh_config') };
const env = nixEnv(scope, box.env);
const busybox = await arm64BusyboxStorePath();
const run = Date.now().toString(36);

/** The first lines from Nix's first error on, with store hashes and nonces blanked, so equal causes group. */
function failureReason(stderr: string, code: number | null): string {
  const lines = stderr.split('\n').map((l) => l.trimEnd()).filter((l) => l.trim() !== '');
  const at = lines.findIndex((l) => /error/i.test(l));
  const picked = (at >= 0 ? lines.slice(at, at + 4) : lines.slice(-4)).join('\n');
  const reason = picked
    .replace(/\/nix\/store\/[0-9a-z]{32}-[^\s'"]*/g, '/nix/store/…')
    .replace(new RegExp(`-soak-${run}-\\d+`, 'g'), '-soak-…');
  return reason === '' ? `nix-build exited ${code} and printed nothing` : reason;
}

async function oneBuild(index: number): Promise<Build> {
  const { attr, system, arch } = systems[index % systems.length] ?? systems[0];
  const nonce = `-soak-${run}-${index}`;
  const startedAt = Date.now();
  let result: NixBuildResult;
  let expected: string;
  if (attr === 'aarch64') {
    const inputs = addRandomFiles(1, inputBytes, `soak-${run}-${index}`);
    result = await nixBuildInputs(env, { busybox, inputs, nonce, signal: interrupt.signal });
    expected = `${inputBytes}\n`;
  } else {
    result = await nixBuild(env, [attr], { busybox, nonce, signal: interrupt.signal });
    expected = `built on ${arch}\n`;
  }
  const endedAt = Date.now();
  const output = result.code === 0 ? readFileSync(result.stdout.trim(), 'utf8') : '';
  const failure =
    result.code !== 0 ? failureReason(result.stderr, result.code) : output !== expected ? `wrong output: ${JSON.stringify(output)}, not ${JSON.stringify(expected)}` : '';
  return { index, system, startedAt, endedAt, ok: failure === '', failure, copied: copiedToBuilder(result.stderr).length };
}

/** Runs builds first..last-1, `parallel` at a time. */
async function wave(first: number, last: number, done: Build[]): Promise<void> {
  let next = first;
  const worker = async (): Promise<void> => {
    while (next < last && !interrupt.signal.aborted) {
      let build: Build;
      try {
        build = await oneBuild(next++);
      } catch (error) {
        if (interrupt.signal.aborted) return;
        throw error;
      }
      done.push(build);
      if (!build.ok) process.stderr.write(`build ${build.index} (${build.system}) failed: ${build.failure.split('\n')[0]}\n`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, last - first) }, worker));
}

/** [boot-start, boot-ready) in ms; a boot that never got ready ends at the next event. */
function bootIntervals(events: readonly LoggedEvent[]): { from: number; to: number }[] {
  const intervals: { from: number; to: number }[] = [];
  events.forEach((e, i) => {
    if (e.event !== 'boot-start') return;
    const end = events.slice(i + 1).find((f) => f.event === 'boot-ready' || f.event === 'error') ?? events[events.length - 1];
    intervals.push({ from: Date.parse(e.time), to: Date.parse(end?.time ?? e.time) });
  });
  return intervals;
}

const loadText = (): string => loadavg().map((l) => l.toFixed(2)).join(', ');

const interrupt = new AbortController();
const agent = await startAgent(box, name, ['--listen', `127.0.0.1:${await freePort()}`, '--idle-timeout', idleText]);
let cleaning: Promise<void> | undefined;
const cleanUp = (): Promise<void> =>
  (cleaning ??= (async () => {
    agent.child.kill('SIGTERM'); // the agent powers off the VM it runs
    await agent.exited;
    await box.run(['--name', name, 'stop', '--force']);
  })());
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`\n${signal}: stopping the builds, the agent and the VM (files kept in ${join(box.stateHome, 'linux-builder', name)})\n`);
    interrupt.abort(); // kills the nix-builds, so the agent has no connection to wait for
    void cleanUp().finally(() => process.exit(130));
  });
}

const loadBefore = loadText();
const done: Build[] = [];
const t0 = Date.now();
let failures = 0;
try {
  const installed = await box.run(['--name', name, 'nix-config', '--install', '--scope', 'user', '--nix-conf', scope.nixConf, '--ssh-config', scope.sshConfig]);
  if (installed.code !== 0) throw new Error(installed.stderr);
  const waves = Math.ceil(builds / waveSize);
  for (let w = 0; w < waves && !interrupt.signal.aborted; w++) {
    await wave(w * waveSize, Math.min(builds, (w + 1) * waveSize), done);
    const failed = done.filter((b) => !b.ok).length;
    process.stderr.write(`wave ${w + 1}/${waves}: ${done.length} builds, ${failed} failed, ${seconds(Date.now() - t0)} s\n`);
    if (w < waves - 1) await new Promise((resolve) => setTimeout(resolve, Math.max(0, idleMs + (pauseOffsetsMs[w % pauseOffsetsMs.length] ?? 0))));
  }
  const wallMs = Date.now() - t0;
  if (interrupt.signal.aborted) {
    await cleanUp();
    process.exit(130);
  }
  await new Promise((resolve) => setTimeout(resolve, 300)); // the last events are written

  const events = agentEvents(box, name);
  const count = (event: string): number => events.filter((e) => e.event === event).length;
  const boots = bootIntervals(events);
  const waited = (b: Build): boolean => boots.some((boot) => b.startedAt < boot.to && b.endedAt > boot.from);
  const ok = done.filter((b) => b.ok);
  failures = done.length - ok.length;
  const row = (label: string, ms: readonly number[]): string[] => [label, String(ms.length), seconds(percentile(ms, 50)), seconds(percentile(ms, 95)), seconds(Math.max(...ms))];
  const latency = (label: string, group: readonly Build[]): string[] => row(label, group.map((b) => b.endedAt - b.startedAt));
  // The rest of a build's time is the host's: evaluation, and waiting for one of the builder's slots.
  const connected = events.filter((e) => e.event === 'connection-close').map((e) => Number(e.seconds) * 1000);

  console.log(
    `\nsoak: ${builds} builds (${systems.map((s) => s.system).join(', ')}), ${parallel} at a time, waves of ${waveSize}, ` +
      `idle timeout ${idleText}, TCG (${new Date().toISOString().slice(0, 10)})\n`,
  );
  console.log(
    table(['measure', 'value'], [
      ['builds done', String(ok.length)],
      ['builds failed', String(failures)],
      ['builds that copied an input to the guest', `${done.filter((b) => b.copied > 0).length} (${done.reduce((n, b) => n + b.copied, 0)} paths)`],
      ['VM boots (boot-ready)', `${count('boot-ready')} of ${count('boot-start')} started`],
      ['boot to ready, median (s)', seconds(median(events.filter((e) => e.event === 'boot-ready').map((e) => Number(e.seconds) * 1000)))],
      ['idle stops', String(count('idle-stop'))],
      ['VM exits without a stop', String(count('vm-exited'))],
      ['agent errors', String(count('error'))],
      ['wall time (s)', seconds(wallMs)],
      ['load average before', loadBefore],
      ['load average after', loadText()],
    ]),
  );
  console.log('');
  console.log(
    table(['latency of successful builds (s)', 'builds', 'p50', 'p95', 'max'], [
      latency('all', ok),
      latency('overlapped a boot', ok.filter(waited)),
      latency('VM already running', ok.filter((b) => !waited(b))),
      ...systems.map((s) => latency(s.system, ok.filter((b) => b.system === s.system))),
      row('agent connections, all builds', connected),
    ]),
  );
  const reasons = new Map<string, number>();
  for (const b of done) if (!b.ok) reasons.set(b.failure, (reasons.get(b.failure) ?? 0) + 1);
  for (const [reason, n] of reasons) console.log(`\n${n} × failed:\n${reason.replace(/^/gm, '  | ')}`);
  const errors = new Map<string, number>();
  for (const e of events) if (e.event === 'error') errors.set(String(e.message), (errors.get(String(e.message)) ?? 0) + 1);
  for (const [message, n] of errors) console.log(`\n${n} × agent error: ${message}`);
  const copies = done.filter((b) => b.copied > 0).length;
  console.log(`\ntarget: 0 failures (${failures === 0 ? 'met' : 'missed'}), 0 inputs copied (${copies === 0 ? 'met' : 'missed'})`);
} finally {
  await cleanUp();
}
if (failures === 0 && !interrupt.signal.aborted && !keep) {
  for (const dir of [box.stateHome, box.runtimeDir, scopeDir]) rmSync(dir, { recursive: true, force: true });
} else {
  console.log(`agent log and console kept in ${join(box.stateHome, 'linux-builder', name)}`);
}
