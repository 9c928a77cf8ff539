/**
 * The nix-daemon every remote build starts (scripts/nix-daemon.sh), and the spare daemons it hands
 * connections to (scripts/nix-daemon-spares.sh). The host's Nix opens one SSH connection per
 * build and runs `nix-daemon --stdio` there; Nix itself takes seconds to start under emulation
 * (dozens of shared libraries, its store opened), so daemons are started before connections come
 * and a connection only relays to one (busybox cat over FIFOs: the guest has no unix-socket relay
 * that starts faster than Nix). Each spare serves one connection, as a daemon started for it
 * would: when the host's side ends, the daemon reads the end of its input.
 */
import { guestPaths, sessionPath, type GuestTools } from './init.js';
import { renderScript, shellAssignments } from './scripts.js';

/** nix-daemon, as the host's Nix starts it for every remote build (`nix-daemon --stdio`). */
export function nixDaemonWrapper(tools: Pick<GuestTools, 'nixDaemon'>): string {
  return renderScript('nix-daemon', {
    BUSYBOX_DIR: guestPaths.busyboxDir,
    SETTINGS: shellAssignments({ busybox_dir: guestPaths.busyboxDir, spares_dir: guestPaths.sparesDir, spares: guestPaths.spares }),
    COLLECTOR: guestPaths.collector,
    NIX_DAEMON: tools.nixDaemon,
  });
}

/** /etc/nix-daemon-spares N: starts N spare daemons. */
export function nixDaemonSpares(tools: Pick<GuestTools, 'nixDaemon'>): string {
  return renderScript('nix-daemon-spares', {
    BUSYBOX_DIR: guestPaths.busyboxDir,
    SETTINGS: shellAssignments({ busybox_dir: guestPaths.busyboxDir, spares_dir: guestPaths.sparesDir, session_path: sessionPath, nix_daemon: tools.nixDaemon, nix_db: '/nix/var/nix/db' }),
  });
}
