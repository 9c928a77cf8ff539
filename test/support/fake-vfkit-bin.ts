/** Puts the fake vfkit on a PATH directory as `vfkit`: a shell script that execs Node on fake-vfkit.ts (same pid). */
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fakeVfkitVariable } from '../../src/drivers/index.js';
import { runCli, sandbox, type Sandbox } from './cli.js';

export const fakeVfkitScript = fileURLToPath(new URL('./fake-vfkit.ts', import.meta.url));

/** Writes dir/vfkit and returns its path. */
export async function installFakeVfkit(dir: string): Promise<string> {
  const tsx = import.meta.resolve('tsx');
  const path = join(dir, 'vfkit');
  const quote = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`;
  await writeFile(path, `#!/bin/sh\nexec ${quote(process.execPath)} --import ${quote(tsx)} ${quote(fakeVfkitScript)} "$@"\n`);
  await chmod(path, 0o755);
  return path;
}

/** dir/nc: `nc -U PATH`, the ProxyCommand of an ssh_config that reaches a unix socket, for hosts without netcat. */
export async function installNcShim(dir: string): Promise<string> {
  const path = join(dir, 'nc');
  const relay = "const s=require('net').connect(process.argv[1]);process.stdin.pipe(s);s.pipe(process.stdout);s.on('close',()=>process.exit(0));s.on('error',(e)=>{console.error(e.message);process.exit(1)})";
  await writeFile(path, `#!/bin/sh\n[ "$1" = -U ] || { echo "nc shim: only -U PATH" >&2; exit 2; }\nexec '${process.execPath}' -e "${relay}" "$2"\n`);
  await chmod(path, 0o755);
  return path;
}

/** What the vfkit tests read of `status --json`. */
export interface VfkitStatus {
  state: string;
  pid: number | null;
  driver: string;
  ssh: { kind: string; path?: string } | null;
  reasons: string[];
  lastExit: { reason: string } | null;
}

export interface FakeVfkitSandbox {
  readonly box: Sandbox;
  /** The instance's vfkit REST socket: what names its vfkit in process listings. */
  readonly rest: string;
  readonly status: () => Promise<VfkitStatus>;
}

/**
 * A sandbox whose CLI runs the vfkit driver here, against the fake vfkit (and an `nc -U` shim)
 * on its PATH, with the fake's FAKE_VFKIT_* settings in env.
 */
export async function fakeVfkitSandbox(name: string, env: Record<string, string>): Promise<FakeVfkitSandbox> {
  const base = sandbox();
  const bin = await mkdtemp('/tmp/lbfv-');
  await installFakeVfkit(bin);
  await installNcShim(bin);
  const fullEnv = { ...base.env, PATH: `${bin}:${process.env.PATH ?? ''}`, [fakeVfkitVariable]: '1', ...env };
  const box: Sandbox = { ...base, env: fullEnv, run: (args, options = {}) => runCli(args, options.env ?? fullEnv, options.timeoutMs ?? 300_000) };
  const status = async (): Promise<VfkitStatus> => JSON.parse((await box.run(['--name', name, 'status', '--json'])).stdout) as VfkitStatus;
  return { box, rest: join(box.runtimeDir, 'linux-builder', name, 'vfkit.sock'), status };
}
