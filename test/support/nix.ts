/** Runs the host's real nix-build against the builder, with the config a test installed. */
import { spawn } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
export const helloNix = join(fixtures, 'hello.nix');
export const inputsNix = join(fixtures, 'inputs.nix');
export const slowNix = join(fixtures, 'slow.nix');
export const probeNix = join(fixtures, 'probe.nix');

/** The key=value lines probe.nix writes, as a record. */
export const probeLines = (text: string): Record<string, string> =>
  Object.fromEntries([...text.matchAll(/^([a-z-]+)=(.*)$/gm)].map((m) => [m[1] ?? '', m[2] ?? '']));

export interface NixScope {
  readonly nixConf: string;
  readonly sshConfig: string;
}

export function nixEnv(scope: NixScope, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...base, NIX_USER_CONF_FILES: scope.nixConf, NIX_SSHOPTS: `-F ${scope.sshConfig}` };
}

/** nix-build of hello.nix attributes; --max-jobs 0 so nothing builds on the host. */
export function nixBuild(
  env: NodeJS.ProcessEnv,
  attrs: string[],
  args: { busybox: string; nonce: string; signal?: AbortSignal },
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const argv = [
    '--max-jobs', '0', '--no-out-link',
    // The host is offline here: without this, every build waits ~5 s on cache.nixos.org.
    '--option', 'substituters', '',
    helloNix, '--arg', 'busybox', JSON.stringify(args.busybox), '--argstr', 'nonce', args.nonce,
    ...attrs.flatMap((a) => ['-A', a]),
  ];
  return runNixBuild(env, argv, args.signal);
}

/** Builds inputs.nix: an aarch64 derivation reading the given host store paths. */
export function nixBuildInputs(
  env: NodeJS.ProcessEnv,
  args: { busybox: string; inputs: readonly string[]; nonce: string; read?: boolean; signal?: AbortSignal },
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const argv = [
    '--max-jobs', '0', '--no-out-link', '--option', 'substituters', '',
    inputsNix, '--arg', 'busybox', JSON.stringify(args.busybox), '--arg', 'read', args.read === false ? 'false' : 'true',
    '--arg', 'inputs', `[ ${args.inputs.map((p) => JSON.stringify(p)).join(' ')} ]`, '--argstr', 'nonce', args.nonce,
  ];
  return runNixBuild(env, argv, args.signal);
}

/** The store paths Nix says it copied to the builder. */
export function copiedToBuilder(stderr: string): string[] {
  return [...stderr.matchAll(/copying path '([^']+)' to 'ssh/g)].map((m) => m[1] ?? '');
}

export interface NixBuildResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A nix-build still running: its result, and its stderr so far. */
export interface RunningNixBuild {
  readonly result: Promise<NixBuildResult>;
  stderr(): string;
  kill(): void;
}

/** The line slow.nix prints in the guest before it sleeps. */
export const slowBuildStarted = 'linux-builder-test: build started';

/** Starts a build of slow.nix: an x86_64 derivation that sleeps an hour in the guest, to interrupt. */
export function startSlowBuild(env: NodeJS.ProcessEnv, nonce: string): RunningNixBuild {
  return spawnNixBuild(env, ['--max-jobs', '0', '--no-out-link', '--option', 'substituters', '', slowNix, '--argstr', 'nonce', nonce]);
}

/** Resolves once the guest printed that the build started; rejects when nix-build ends first. */
export async function buildStarted(build: RunningNixBuild): Promise<void> {
  let ended: NixBuildResult | undefined;
  void build.result.then((result) => (ended = result));
  for (;;) {
    if (build.stderr().includes(slowBuildStarted)) return;
    if (ended) throw new Error(`nix-build ended (${ended.code}) before the build started: ${ended.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** An aborted signal kills nix-build and rejects. */
export function runNixBuild(env: NodeJS.ProcessEnv, argv: string[], signal?: AbortSignal): Promise<NixBuildResult> {
  return spawnNixBuild(env, argv, signal).result;
}

function spawnNixBuild(env: NodeJS.ProcessEnv, argv: string[], signal?: AbortSignal): RunningNixBuild {
  const child = spawn('nix-build', argv, { env, stdio: ['ignore', 'pipe', 'pipe'], ...(signal ? { signal } : {}) });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const result = new Promise<NixBuildResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  return {
    result,
    stderr: () => stderr,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/**
 * The same builds of hello.nix with the new CLI (`nix build`, Nix 2.26 here), which needs the
 * nix-command feature; prints the output paths like nix-build does.
 */
export function nixCommandBuild(env: NodeJS.ProcessEnv, attrs: string[], args: { busybox: string; nonce: string }): Promise<NixBuildResult> {
  const argv = [
    '--extra-experimental-features', 'nix-command', 'build',
    '--max-jobs', '0', '--no-link', '--print-out-paths', '--option', 'substituters', '',
    '--file', helloNix, '--arg', 'busybox', JSON.stringify(args.busybox), '--argstr', 'nonce', args.nonce,
    ...attrs,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn('nix', argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
