/**
 * What the CLI and the agent cost when nothing is building: wall time of `--version` and of
 * `status` (an instance that exists, VM stopped), against the floor of Node itself starting and
 * exiting (`node -e 0`), in the same run; and the resident memory of an idle agent, against an
 * idle `node` that only waits: first an agent that never booted, then the same agent after it
 * booted the VM for a connection and stopped it on its idle timeout, as many times as --boots
 * says. Memory is read after the agent sat idle long enough for V8's memory reducer to run (it
 * shrinks the heap some 10–20 s after the last activity). The VM session (the agent's child that
 * owns the VM while it runs) is read too, 10 s after the first connection closed.
 *
 *   npm run bench:footprint [-- --runs 10] [-- --boots 3] [-- --no-cycle]
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { cliPath, processesMatching, sandbox } from '../test/support/cli.js';
import { agentEvents, freePort, startAgent, waitFor } from '../test/support/agent.js';
import { median, seconds, table } from './stats.js';

const runs = (() => {
  const at = process.argv.indexOf('--runs');
  return at > 0 ? Number(process.argv[at + 1]) : 10;
})();
const cycle = !process.argv.includes('--no-cycle');
const boots = (() => {
  const at = process.argv.indexOf('--boots');
  return at > 0 ? Number(process.argv[at + 1]) : 1;
})();
const settleMs = 40_000;
const box = sandbox();
const name = 'footprint';

/** Milliseconds from spawn to exit of one command; throws on a non-zero exit. */
function timed(argv: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, argv, { env: box.env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('exit', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`${argv.join(' ')} exited ${code}: ${stderr}`))));
  });
}

async function medianOf(argv: string[]): Promise<{ median: number; min: number; max: number }> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(await timed(argv));
  return { median: median(times), min: Math.min(...times), max: Math.max(...times) };
}

/** VmRSS of a process, in MiB. */
function rssMiB(pid: number): number {
  const kib = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  if (!kib) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(kib) / 1024;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// The instance exists (settings, keys) once the agent has started: status then reads real files.
const port = await freePort();
const agent = await startAgent(box, name, ['--listen', `127.0.0.1:${port}`, '--idle-timeout', '15s']);
const memory: string[][] = [];
try {
  const floor = await medianOf(['-e', '0']);
  const version = await medianOf([cliPath, '--version']);
  const status = await medianOf([cliPath, '--name', name, 'status']);
  const row = (label: string, m: { median: number; min: number; max: number }): string[] => [label, seconds(m.median), seconds(m.min), seconds(m.max), (m.median / floor.median).toFixed(2)];
  process.stdout.write(`\nCLI start-up (${runs} runs each)\n\n`);
  process.stdout.write(`${table(['command', 'median (s)', 'min (s)', 'max (s)', 'ratio to floor'], [row('floor: node -e 0', floor), row('linux-builder --version', version), row('linux-builder status (VM stopped)', status)])}\n`);

  const idleNode = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
  await sleep(settleMs);
  const pid = agent.child.pid ?? 0;
  memory.push(['floor: idle node', (rssMiB(idleNode.pid ?? 0)).toFixed(1)], ['agent, never booted', rssMiB(pid).toFixed(1)]);
  idleNode.kill();
  if (cycle) {
    for (let boot = 1; boot <= boots; boot++) {
      process.stderr.write(`boot ${boot}/${boots}: booting the VM through the agent for one connection (it stops 15 s after)…\n`);
      const stopsBefore = agentEvents(box, name).filter((e) => e.event === 'idle-stop').length;
      const socket = connect(port, '127.0.0.1');
      await new Promise<void>((resolve, reject) => {
        socket.once('data', () => resolve());
        socket.once('error', reject);
      });
      socket.destroy();
      if (boot === 1) {
        await sleep(10_000);
        const [session] = processesMatching(`--name\u0000${name}\u0000vm-session\u0000`);
        if (session) memory.push(['VM session, VM running (10 s after the connection)', rssMiB(session).toFixed(1)]);
      }
      await waitFor('the idle stop', () => (agentEvents(box, name).filter((e) => e.event === 'idle-stop').length > stopsBefore ? true : undefined), 10 * 60_000);
      await sleep(settleMs);
      memory.push([`agent, after ${boot} boot${boot === 1 ? '' : 's'} and idle stop${boot === 1 ? '' : 's'}`, rssMiB(pid).toFixed(1)]);
    }
  }
  process.stdout.write(`\nIdle resident memory (VmRSS, ${settleMs / 1000} s after the last activity)\n\n${table(['process', 'RSS (MiB)'], memory)}\n`);
} finally {
  agent.child.kill('SIGTERM');
  await agent.exited;
}
