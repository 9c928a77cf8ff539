/**
 * The product's three top-level places: state (kept), cache (rebuildable) and runtime (sockets,
 * short paths). Linux: XDG directories, or /var/lib and /var/cache as root without them; macOS:
 * ~/Library/Application Support and ~/Library/Caches.
 */
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Roots {
  readonly state: string;
  readonly cache: string;
  readonly runtime: string;
}

export function roots(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): Roots {
  const home = env.HOME ?? homedir();
  const uid = process.getuid?.() ?? 0;
  const runtime = env.XDG_RUNTIME_DIR
    ? join(env.XDG_RUNTIME_DIR, 'linux-builder')
    : join(platform === 'darwin' ? tmpdir() : '/tmp', `linux-builder-${uid}`);
  if (platform === 'darwin') {
    return {
      state: join(env.XDG_STATE_HOME ?? join(home, 'Library', 'Application Support'), 'linux-builder'),
      cache: join(env.XDG_CACHE_HOME ?? join(home, 'Library', 'Caches'), 'linux-builder'),
      runtime,
    };
  }
  // As root without XDG variables, the system-wide places a system service uses.
  const root = uid === 0;
  return {
    state: env.XDG_STATE_HOME
      ? join(env.XDG_STATE_HOME, 'linux-builder')
      : root
        ? '/var/lib/linux-builder'
        : join(home, '.local', 'state', 'linux-builder'),
    cache: env.XDG_CACHE_HOME
      ? join(env.XDG_CACHE_HOME, 'linux-builder')
      : root
        ? '/var/cache/linux-builder'
        : join(home, '.cache', 'linux-builder'),
    runtime,
  };
}
