#!@BUSYBOX_DIR@/sh
# The guest's garbage collector (rendered by src/guest/collector.ts): `loop` collects in the
# background, `if-short` once when the disk is under min-free. It deletes only dead paths on the
# guest's own disk, in batches, until max-free bytes are free; the host's paths seen through the
# overlay are never touched (deleting them frees nothing and leaves whiteouts).
@SETTINGS@
export PATH=$busybox_dir
read -r gcmin gcmax < $gc_thresholds 2>/dev/null || exit 0
t() { read -r up _ < /proc/uptime; echo "[gc $up] $*" > /dev/console; }
# %d in busybox awk stops at 2^31: a disk with more than 2 GiB free would read as negative.
freebytes() { df -Pk $rw_store | awk 'NR == 2 { printf "%.0f", $4 * 1024 }'; }
# a file held on the disk, dropped before each collection so Nix can always open its database
reserve() { [ -e $reserve_file ] || $fallocate -l $reserve_bytes $reserve_file 2>/dev/null || rm -f $reserve_file; }
# Nix's GC lock serializes a collection of the loop and one of a build connection; the second
# finds what the first left, and may have nothing to do.
collect() {
  [ "$(freebytes)" -lt "$gcmin" ] || return 0
  t "$(freebytes) bytes free: collecting garbage"
  # room for Nix's database, its journal and the GC itself, however full the disk got
  rm -f $reserve_file
  $nix_store --gc --print-dead > /run/gc.dead.$$ 2>> $collector_log || return
  cd $rw_store/upper || return
  while read -r p; do
    n=${p#/nix/store/}
    { [ -e "$n" ] || [ -L "$n" ]; } && [ ! -c "$n" ] && [ ! -e "/nix/.ro-store/$n" ] && echo "$p"
  done < /run/gc.dead.$$ > /run/gc.mine.$$
  cd /
  while [ -s /run/gc.mine.$$ ]; do
    head -n 500 /run/gc.mine.$$ | xargs $nix_store --delete >> $collector_log 2>&1
    sed -i 1,500d /run/gc.mine.$$
    [ "$(freebytes)" -ge "$gcmax" ] && break
  done
  reserve
  rm -f /run/gc.dead.$$ /run/gc.mine.$$
  t "collected: $(freebytes) bytes free"
}
case "$1" in
  if-short) collect ;;
  loop)
    rest=10
    while sleep 3; do
      f=$(freebytes)
      if [ "$f" -ge "$gcmin" ]; then reserve; rest=10; continue; fi
      collect; g=$(freebytes)
      # nothing to collect (the disk holds live paths): ask less often, up to every 5 minutes
      if [ "$g" -le "$f" ]; then rest=$((rest * 2)); [ $rest -gt 300 ] && rest=300; fi
      sleep $rest
    done ;;
esac
exit 0
