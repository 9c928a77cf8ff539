/**
 * Evaluates the repository's Nix files with the host's nix-instantiate: the modules through the
 * real module system, with the vendored nixpkgs lib and nix-darwin modules beside the checkout
 * (../shared/vendor); a test that needs what is missing skips, saying what.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const vendorDir = resolve(repoRoot, '..', 'shared', 'vendor');
const evalDir = join(repoRoot, 'test', 'unit', 'flake', 'eval');

/** Why nix-instantiate cannot evaluate here (absent, or a store this user cannot open), or undefined. */
function nixUnusable(): string | undefined {
  const probe = spawnSync('nix-instantiate', ['--eval', '--expr', '1'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (probe.error) return 'nix-instantiate is not on PATH: install Nix (apt-get install nix-bin) to check the Nix files';
  if (probe.status !== 0) return `nix-instantiate cannot evaluate as this user: ${probe.stderr.trim().split('\n')[0] ?? ''}`;
  return undefined;
}

/** Why Nix files cannot be parsed here, or undefined when they can. */
export const noNix: string | undefined = nixUnusable();

/** Why the modules cannot be evaluated here, or undefined when they can. */
export const noModuleEval: string | undefined =
  noNix ?? (existsSync(join(vendorDir, 'nixpkgs-lib', 'lib')) && existsSync(join(vendorDir, 'nix-darwin', 'modules'))
    ? undefined
    : `${vendorDir} (nixpkgs' lib and nix-darwin's modules) is absent: the modules cannot be evaluated without it`);

/** A Nix path literal for an absolute path (no spaces in the paths used here). */
function pathLiteral(path: string): string {
  if (/\s/.test(path)) throw new Error(`cannot pass a path with whitespace to Nix: ${path}`);
  return path;
}

/** nix-instantiate --eval --strict --json of a file in test/unit/flake/eval with named arguments. */
export function evalJson<T>(file: string, args: { arg?: Record<string, string>; argstr?: Record<string, string> } = {}): T {
  const argv = ['--eval', '--strict', '--json', join(evalDir, file)];
  for (const [name, value] of Object.entries(args.arg ?? {})) argv.push('--arg', name, value);
  for (const [name, value] of Object.entries(args.argstr ?? {})) argv.push('--argstr', name, value);
  return JSON.parse(execFileSync('nix-instantiate', argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as T;
}

/** Evaluates a module (nixos.nix or darwin.nix in eval/) with the given config. */
export function evalModule<T>(platform: 'nixos' | 'darwin', system: string, config: unknown): T {
  return evalJson<T>(`${platform}.nix`, {
    arg: { vendor: pathLiteral(vendorDir), repo: pathLiteral(repoRoot) },
    argstr: { system, configJSON: JSON.stringify(config) },
  });
}

/** What a failed evaluation said (its stderr); throws when it succeeded. */
export function evalError(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? error);
    return stderr;
  }
  throw new Error('the evaluation succeeded');
}
