/**
 * The guest's garbage collector, instead of Nix's own min-free, and the nix-daemon every remote
 * build starts, which calls it first. Nix's collector would also delete the host's paths the
 * guest sees through the overlay: that frees nothing, hides them behind whiteouts, and on a full
 * disk (no room for a whiteout) fails at the first one, leaving a failed build's output in place.
 * This one deletes only dead paths on the guest's own disk, in batches, until max-free bytes are
 * free. It runs every few seconds while less than min-free is free (resting longer each time
 * nothing could be freed, so a disk full of live paths does not keep the guest collecting), and
 * at the start of every build connection, so a build that comes right after one that filled the
 * disk finds room. A reserve file held on the disk is dropped before each collection, so Nix can
 * always open its database to collect.
 */
import { guestPaths } from './init.js';

const reserveBytes = 64 * 1024 * 1024;

/** /etc/collect-garbage: `loop` (the background collector), `if-short` (collect when under min-free). */
export function collectorScript(): string {
  const rw = guestPaths.rwStore;
  const log = guestPaths.collectorLog;
  const reserve = `${rw}/.reserve`;
  return [
    `#!${guestPaths.busyboxDir}/sh`,
    `export PATH=${guestPaths.busyboxDir}`,
    `read -r gcmin gcmax < ${guestPaths.gcThresholds} 2>/dev/null || exit 0`,
    't() { read -r up _ < /proc/uptime; echo "[gc $up] $*" > /dev/console; }',
    // %d in busybox awk stops at 2^31: a disk with more than 2 GiB free would read as negative.
    `freebytes() { df -Pk ${rw} | awk 'NR == 2 { printf "%.0f", $4 * 1024 }'; }`,
    `reserve() { [ -e ${reserve} ] || /usr/bin/fallocate -l ${reserveBytes} ${reserve} 2>/dev/null || rm -f ${reserve}; }`,
    // Nix's GC lock serializes a collection of the loop and one of a build connection; the
    // second finds what the first left, and may have nothing to do.
    'collect() {',
    '  [ "$(freebytes)" -lt "$gcmin" ] || return 0',
    '  t "$(freebytes) bytes free: collecting garbage"',
    // Room for Nix's database, its journal and the GC itself, however full the disk got.
    `  rm -f ${reserve}`,
    `  /usr/bin/nix-store --gc --print-dead > /run/gc.dead.$$ 2>> ${log} || return`,
    `  cd ${rw}/upper || return`,
    '  while read -r p; do',
    '    n=${p#/nix/store/}',
    '    { [ -e "$n" ] || [ -L "$n" ]; } && [ ! -c "$n" ] && [ ! -e "/nix/.ro-store/$n" ] && echo "$p"',
    '  done < /run/gc.dead.$$ > /run/gc.mine.$$',
    '  cd /',
    '  while [ -s /run/gc.mine.$$ ]; do',
    `    head -n 500 /run/gc.mine.$$ | xargs /usr/bin/nix-store --delete >> ${log} 2>&1`,
    '    sed -i 1,500d /run/gc.mine.$$',
    '    [ "$(freebytes)" -ge "$gcmax" ] && break',
    '  done',
    '  reserve',
    '  rm -f /run/gc.dead.$$ /run/gc.mine.$$',
    '  t "collected: $(freebytes) bytes free"',
    '}',
    'case "$1" in',
    '  if-short) collect ;;',
    '  loop)',
    '    rest=10',
    '    while sleep 3; do',
    '      f=$(freebytes)',
    '      if [ "$f" -ge "$gcmin" ]; then reserve; rest=10; continue; fi',
    '      collect; g=$(freebytes)',
    '      # nothing to collect (the disk holds live paths): ask less often, up to every 5 minutes',
    '      if [ "$g" -le "$f" ]; then rest=$((rest * 2)); [ $rest -gt 300 ] && rest=300; fi',
    '      sleep $rest',
    '    done ;;',
    'esac',
    'exit 0',
    '',
  ].join('\n');
}

/**
 * nix-daemon, as the host's Nix starts it for every remote build (`nix-daemon --stdio`): room
 * first, when a failed build left the disk short of it, then the real daemon.
 */
export function nixDaemonWrapper(): string {
  return [
    `#!${guestPaths.busyboxDir}/sh`,
    `${guestPaths.collector} if-short`,
    'exec /usr/bin/nix-daemon "$@"',
    '',
  ].join('\n');
}
