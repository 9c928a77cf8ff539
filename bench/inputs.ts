/**
 * Zero-copy inputs: in one run, builds an aarch64-linux derivation whose input closure is N MB
 * (N = 1, 64, 512) through the agent with host-store registration on and off, and prints the
 * bytes sent to the guest (counted by the agent's relay) and the wall time of each build.
 *
 *   npm run bench:inputs [-- --sizes 1,64,512 --off-sizes 1,64]
 * Target: with registration, bytes sent ≤ 1% of the closure and wall time flat in N.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sandbox, type Sandbox } from '../test/support/cli.js';
import { agentEvents, freePort, startAgent } from '../test/support/agent.js';
import { arm64BusyboxStorePath } from '../test/support/busybox-static.js';
import { nixBuildInputs, nixEnv } from '../test/support/nix.js';
import { addRandomStorePath } from '../test/support/store.js';
import { seconds, table } from './stats.js';

const flag = (name: string, fallback: string): number[] => {
  const at = process.argv.indexOf(name);
  return (at > 0 ? (process.argv[at + 1] ?? fallback) : fallback).split(',').map(Number);
};
const sizesMiB = flag('--sizes', '1,64,512');
// Copying 512 MiB over SSH into a TCG guest takes minutes: by default "off" stops at 64 MiB.
const offSizesMiB = flag('--off-sizes', '1,64');
const busybox = await arm64BusyboxStorePath();

interface Row {
  mib: number;
  registration: boolean;
  bytes: number;
  ms: number;
}

async function measure(registration: boolean, inputs: Map<number, string>): Promise<Row[]> {
  const base: Sandbox = sandbox();
  const box: Sandbox = registration ? base : { ...base, env: { ...base.env, LINUX_BUILDER_SKIP_STORE_SYNC: '1' } };
  const name = registration ? 'inputs-on' : 'inputs-off';
  const scopeDir = mkdtempSync(join(tmpdir(), 'lb-bench-'));
  const scope = { nixConf: join(scopeDir, 'nix.conf'), sshConfig: join(scopeDir, 'ssh_config') };
  const env = nixEnv(scope, box.env);
  const agent = await startAgent(box, name, ['--listen', `127.0.0.1:${await freePort()}`, '--idle-timeout', '1h']);
  const rows: Row[] = [];
  try {
    const installed = await box.run(['--name', name, 'nix-config', '--install', '--scope', 'user', '--nix-conf', scope.nixConf, '--ssh-config', scope.sshConfig]);
    if (installed.code !== 0) throw new Error(installed.stderr);
    // Boots the VM (and copies busybox when registration is off): not what is measured.
    await nixBuildInputs(env, { busybox, inputs: [], nonce: `-warm-${Date.now()}` });
    for (const mib of registration ? sizesMiB : offSizesMiB) {
      const input = inputs.get(mib) ?? '';
      const before = agentEvents(box, name).length;
      const t0 = performance.now();
      const result = await nixBuildInputs(env, { busybox, inputs: [input], nonce: `-${name}-${mib}-${Date.now()}`, read: false });
      const ms = performance.now() - t0;
      if (result.code !== 0) throw new Error(`${name} ${mib} MiB failed:\n${result.stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 300)); // the close events are written
      const bytes = agentEvents(box, name)
        .slice(before)
        .filter((e) => e.event === 'connection-close')
        .reduce((sum, e) => sum + Number(e.bytesIn ?? 0), 0);
      rows.push({ mib, registration, bytes, ms });
      process.stderr.write(`${name}: ${mib} MiB → ${(bytes / 1024).toFixed(0)} KiB sent, ${seconds(ms)} s\n`);
    }
  } finally {
    agent.child.kill('SIGTERM');
    await agent.exited;
  }
  return rows;
}

const inputs = new Map<number, string>();
for (const mib of sizesMiB) inputs.set(mib, await addRandomStorePath(mib, 'input'));
const rows = [...(await measure(true, inputs)), ...(await measure(false, inputs))];
console.log(`\ninputs benchmark: one build per size, TCG (${new Date().toISOString().slice(0, 10)})\n`);
console.log(
  table(
    ['input closure', 'registration', 'sent to guest', '% of closure', 'wall (s)'],
    rows.map((r) => [
      `${r.mib} MiB`,
      r.registration ? 'on' : 'off',
      r.bytes >= 1 << 20 ? `${(r.bytes / (1 << 20)).toFixed(1)} MiB` : `${(r.bytes / 1024).toFixed(0)} KiB`,
      `${((100 * r.bytes) / (r.mib * (1 << 20))).toFixed(2)} %`,
      seconds(r.ms),
    ]),
  ),
);
