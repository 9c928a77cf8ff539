/**
 * The product's three top-level places: state (kept), cache (rebuildable) and runtime (sockets,
 * short paths). Linux: XDG directories, or /var/lib and /var/cache as root without them; macOS:
 * ~/Library/Application Support, ~/Library/Caches and $TMPDIR, or /var/lib, /Library/Caches and
 * /var/run as root.
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
  // As root without XDG variables, the system-wide places a system service (a LaunchDaemon, a
  // systemd system unit) uses: they do not depend on the HOME or TMPDIR that sudo may pass on.
  const root = uid === 0;
  if (platform === 'darwin') {
    return {
      state: env.XDG_STATE_HOME ? join(env.XDG_STATE_HOME, 'linux-builder') : root ? '/var/lib/linux-builder' : join(home, 'Library', 'Application Support', 'linux-builder'),
      cache: env.XDG_CACHE_HOME ? join(env.XDG_CACHE_HOME, 'linux-builder') : root ? '/Library/Caches/linux-builder' : join(home, 'Library', 'Caches', 'linux-builder'),
      // the per-user $TMPDIR (/var/folders/…/T/) is short, private and survives reboots; launchd passes it on
      runtime: env.XDG_RUNTIME_DIR ? join(env.XDG_RUNTIME_DIR, 'linux-builder') : root ? '/var/run/linux-builder' : join(env.TMPDIR || tmpdir(), `linux-builder-${uid}`),
    };
  }
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
    runtime: env.XDG_RUNTIME_DIR ? join(env.XDG_RUNTIME_DIR, 'linux-builder') : join('/tmp', `linux-builder-${uid}`),
  };
}
