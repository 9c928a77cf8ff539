#!@BUSYBOX_DIR@/sh
# The guest's clean shutdown, busybox init's shutdown action: for poweroff over SSH and the
# power button alike. Sessions, builds, nix-daemon, sshd and the collector are ended first, so
# the instance disk can be unmounted (the store overlay and the bind mounts on it first): its
# ext4 journal is then clean and the next boot needs no recovery. A disk still busy after that
# is made read-only, which flushes the journal too.
@SETTINGS@
export PATH=$busybox_dir
t() { read -r up _ < /proc/uptime; echo "[shutdown $up] $*" > /dev/console; }
t "ending every process"
# every process but init and this script
kill -TERM -1 2>/dev/null
# the mounts on the disk, the last mounted first, then the disk itself
unmount_disk() {
  for m in /tmp /nix/var/nix /nix/store $rw_store; do
    if grep -qE "^[^ ]+ $m (ext4|overlay) " /proc/mounts; then umount "$m" 2>/dev/null || return 1; fi
  done
}
if grep -q " $rw_store ext4 " /proc/mounts; then
  n=0
  until unmount_disk; do
    n=$((n + 1))
    # processes that ignore SIGTERM for 3 s are killed
    [ $n -eq 30 ] && kill -KILL -1 2>/dev/null
    [ $n -ge 50 ] && break
    usleep 100000
  done
  if ! grep -q " $rw_store ext4 " /proc/mounts; then
    t "disk unmounted"
  elif mount -o remount,ro $rw_store; then
    t "disk still busy: made read-only"
  else
    t "disk still busy: it will need a journal recovery"
  fi
fi
sync
umount -a -r 2>/dev/null
exit 0
