/**
 * The product's three top-level places: state (kept), cache (rebuildable) and runtime (sockets,
 * short paths). Linux: XDG directories; macOS: ~/Library/Application Support and ~/Library/Caches.
 * As root without XDG variables, the system's places, which a system service (and the Nix
 * modules) use: /var/lib and /var/cache on Linux; /var/db and /Library/Caches on macOS, where
 * nix-darwin deletes /var/lib/linux-builder (its own builder's) at every activation without it.
 * None has a space, which Nix's machines file cannot carry.
 */
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Roots {
  readonly state: string;
  readonly cache: string;
  readonly runtime: string;
}

export function roots(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform, uid: number = process.getuid?.() ?? 0): Roots {
  const home = env.HOME ?? homedir();
  const root = uid === 0;
  const runtime = env.XDG_RUNTIME_DIR
    ? join(env.XDG_RUNTIME_DIR, 'linux-builder')
    : join(platform === 'darwin' && !root ? tmpdir() : '/tmp', `linux-builder-${uid}`);
  const userState = platform === 'darwin' ? join(home, 'Library', 'Application Support') : join(home, '.local', 'state');
  const userCache = platform === 'darwin' ? join(home, 'Library', 'Caches') : join(home, '.cache');
  return {
    state: env.XDG_STATE_HOME ? join(env.XDG_STATE_HOME, 'linux-builder') : root ? join(platform === 'darwin' ? '/var/db' : '/var/lib', 'linux-builder') : join(userState, 'linux-builder'),
    cache: env.XDG_CACHE_HOME ? join(env.XDG_CACHE_HOME, 'linux-builder') : root ? join(platform === 'darwin' ? '/Library/Caches' : '/var/cache', 'linux-builder') : join(userCache, 'linux-builder'),
    runtime,
  };
}
