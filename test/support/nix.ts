/** Runs the host's real nix-build against the builder, with the config a test installed. */
import { spawn } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const helloNix = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'hello.nix');

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
  args: { busybox: string; nonce: string },
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const argv = [
    '--max-jobs', '0', '--no-out-link',
    // The host is offline here: without this, every build waits ~5 s on cache.nixos.org.
    '--option', 'substituters', '',
    helloNix, '--arg', 'busybox', JSON.stringify(args.busybox), '--argstr', 'nonce', args.nonce,
    ...attrs.flatMap((a) => ['-A', a]),
  ];
  return new Promise((resolve, reject) => {
    const child = spawn('nix-build', argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
