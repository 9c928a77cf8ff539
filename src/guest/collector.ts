/**
 * The guest's garbage collector, instead of Nix's own min-free (scripts/collect-garbage.sh); the
 * nix-daemon every remote build starts calls it first (daemon.ts). Nix's
 * collector would also delete the host's paths the guest sees through the overlay: that frees
 * nothing, hides them behind whiteouts, and on a full disk (no room for a whiteout) fails at the
 * first one, leaving a failed build's output in place. This one deletes only dead paths on the
 * guest's own disk, in batches, until max-free bytes are free. It runs every few seconds while
 * less than min-free is free (resting longer each time nothing could be freed, so a disk full of
 * live paths does not keep the guest collecting), and at the start of every build connection, so
 * a build that comes right after one that filled the disk finds room. A reserve file held on the
 * disk is dropped before each collection, so Nix can always open its database to collect.
 */
import { guestPaths, type GuestTools } from './init.js';
import { renderScript, shellAssignments } from './scripts.js';

const reserveBytes = 64 * 1024 * 1024;

/** /etc/collect-garbage: `loop` (the background collector), `if-short` (collect when under min-free). */
export function collectorScript(tools: Pick<GuestTools, 'nixStore' | 'fallocate'>): string {
  return renderScript('collect-garbage', {
    BUSYBOX_DIR: guestPaths.busyboxDir,
    SETTINGS: shellAssignments({
      busybox_dir: guestPaths.busyboxDir,
      rw_store: guestPaths.rwStore,
      gc_thresholds: guestPaths.gcThresholds,
      collector_log: guestPaths.collectorLog,
      reserve_file: `${guestPaths.rwStore}/.reserve`,
      reserve_bytes: String(reserveBytes),
      nix_store: tools.nixStore,
      fallocate: tools.fallocate,
    }),
  });
}
