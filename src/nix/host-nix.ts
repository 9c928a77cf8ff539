/** What the host's Nix says about itself: version and effective settings. */
import { execFile } from 'node:child_process';
import { failed } from '../errors.js';
import { hostPackages, installCommand } from '../platform/install-command.js';

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { env, timeout: 20_000, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      if (error) reject(Object.assign(error, { stderr }));
      else resolve(stdout);
    });
  });
}

/** `nix --version`: unlike nix-store, it answers without opening the store (which a user may not be allowed to). */
export async function nixVersion(): Promise<string | undefined> {
  const out = await run('nix', ['--version']).catch(() => undefined);
  return out?.match(/(\d+\.\d+(?:\.\d+)?)/)?.[1];
}

export interface HostNixSettings {
  readonly builders: string;
  readonly substituters: readonly string[];
  /** Users (and @groups) whose settings, builders among them, a nix-daemon accepts. */
  readonly trustedUsers: readonly string[];
}

const strings = (value: unknown): string[] => (Array.isArray(value) ? value.filter((s): s is string => typeof s === 'string') : []);

/** The effective settings, as `nix show-config` resolves every config file and NIX_CONFIG. */
export async function hostNixSettings(env: NodeJS.ProcessEnv = process.env): Promise<HostNixSettings> {
  let out: string;
  try {
    out = await run('nix', ['--extra-experimental-features', 'nix-command', 'show-config', '--json'], env);
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim().split('\n').pop() ?? String(error);
    throw failed(`cannot read the host's Nix settings (nix show-config): ${stderr}`, installCommand(hostPackages.nix));
  }
  const json = JSON.parse(out) as Record<string, { value?: unknown }>;
  const builders = json.builders?.value;
  return {
    builders: typeof builders === 'string' ? builders : '',
    substituters: strings(json.substituters?.value),
    trustedUsers: strings(json['trusted-users']?.value),
  };
}

/** Splits a builders value into its entries (machines lines or @files), as Nix does. */
export function builderEntries(value: string): string[] {
  return value
    .split(/[\n;]/)
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
}
