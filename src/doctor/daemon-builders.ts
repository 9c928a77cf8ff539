/**
 * What a nix-daemon builds with, seen by a user it does not trust: the system's builders (from
 * the system's nix.conf alone), and whether they name this builder — through a machines file,
 * which the daemon reads at every build, or straight in nix.conf, which it reads at its start.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { hasBlock } from '../nix/blocks.js';
import { daemonRestartCommand } from '../nix/daemon.js';
import { builderEntries, hostNixSettings } from '../nix/host-nix.js';
import { hostAlias } from '../ssh/config.js';

/** The settings a nix-daemon reads: the system's config files, no user's, no NIX_CONFIG. */
export async function systemBuilders(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const { NIX_CONFIG: _ignored, ...rest } = env;
  return (await hostNixSettings({ ...rest, NIX_USER_CONF_FILES: '' })).builders;
}

export type DaemonBuilder =
  | { readonly found: 'machines-file'; readonly file: string }
  | { readonly found: 'nix-conf'; readonly entry: string }
  | { readonly found: 'no'; readonly unreadable: readonly string[] };

const namesAlias = (line: string, alias: string): boolean => new RegExp(`^\\s*ssh(-ng)?://([^@\\s]+@)?${alias}\\s`).test(line);

/** Where the builders value names the instance `name` (root's: its own machines file is root's to read). */
export async function findDaemonBuilder(builders: string, name: string, read = (path: string) => readFile(path, 'utf8')): Promise<DaemonBuilder> {
  const alias = hostAlias(name);
  const unreadable: string[] = [];
  for (const entry of builderEntries(builders)) {
    if (!entry.startsWith('@')) {
      if (namesAlias(entry, alias)) return { found: 'nix-conf', entry };
      continue;
    }
    const file = entry.slice(1).trim();
    if (file.endsWith(`/linux-builder/${name}/machines`)) return { found: 'nix-conf', entry };
    const text = await read(file).catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? '' : undefined));
    if (text === undefined) unreadable.push(file);
    else if (hasBlock(text, name) || text.split('\n').some((line) => namesAlias(line, alias))) return { found: 'machines-file', file };
  }
  return { found: 'no', unreadable };
}

export interface DaemonBuilderCheck {
  readonly verdict: 'ok' | 'warn' | 'fail';
  readonly detail: string;
  readonly fix?: string;
}

/** Pure over what findDaemonBuilder found. */
export function daemonBuilderCheck(found: DaemonBuilder, builders: string, name: string, platform: NodeJS.Platform = process.platform): DaemonBuilderCheck {
  const install = `sudo linux-builder${name === 'default' ? '' : ` --name ${name}`} nix-config --install`;
  if (found.found === 'machines-file') {
    return { verdict: 'ok', detail: `the nix-daemon builds through builder "${name}" for every user: ${found.file}, which it reads at every build, names it` };
  }
  if (found.found === 'nix-conf') {
    return {
      verdict: 'warn',
      detail: `the system's builders name builder "${name}" (${found.entry}), but a nix-daemon reads nix.conf only at its start: one started before that line was written does not use it`,
      fix: `sudo ${daemonRestartCommand(platform).join(' ')}`,
    };
  }
  const unreadable = found.unreadable.length > 0 ? `; could not read ${found.unreadable.join(', ')}` : '';
  return {
    verdict: 'fail',
    detail: `the nix-daemon's builders (${builders || 'empty'}) do not name builder "${name}": its builds will not use it${unreadable}`,
    fix: `${install} (as root, with the builder started as root)`,
  };
}

/** The files `ssh -v -G` said an Include matched nothing for: missing, or in a directory this user cannot read. */
export function includesMatchingNothing(sshVerboseStderr: string): string[] {
  return [...sshVerboseStderr.matchAll(/: include (\S+) matched no files$/gm)].map((match) => match[1] ?? '');
}

/** What the system's ssh config Includes for alias that this user's ssh cannot read (root's, as the modules set it up). */
export function unreadableIncludes(alias: string, configFile: string, env: NodeJS.ProcessEnv): Promise<string[]> {
  return new Promise((resolve) => {
    execFile('ssh', ['-v', '-G', '-F', configFile, alias], { env, timeout: 5000 }, (_error, _stdout, stderr) => resolve(includesMatchingNothing(stderr)));
  });
}
