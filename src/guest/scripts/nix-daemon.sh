#!@BUSYBOX_DIR@/sh
# nix-daemon, as the host's Nix starts it for every remote build (nix-daemon --stdio): room
# first, when a failed build left the disk short of it; then a spare daemon (nix-daemon-spares.sh),
# started before the connection came, is handed the connection: starting Nix costs seconds under
# emulation. Without a spare, the real daemon starts here, as it always did.
@SETTINGS@
@COLLECTOR@ if-short
if [ "$*" = --stdio ]; then
  for ready in $spares_dir/ready/*; do
    # mv is atomic: of connections that race for a spare, one gets it
    $busybox_dir/mv "$ready" $spares_dir/taken.$$ 2>/dev/null || continue
    read -r pid keeper < $spares_dir/taken.$$
    spare=$spares_dir/${ready##*/}
    $busybox_dir/rm -f $spares_dir/taken.$$
    # a spare that died while it waited is replaced, and the next one tried
    if ! kill -0 "$pid" 2>/dev/null; then kill "$keeper" 2>/dev/null; $busybox_dir/rm -rf $spare; $busybox_dir/setsid $spares start 1 < /dev/null > /dev/null 2>&1 & continue; fi
    # it loaded at the lowest priority (nix-daemon-spares.sh); the build runs at the usual one
    $busybox_dir/renice 0 -p "$pid" > /dev/null 2>&1
    # this end of each FIFO is open before the keeper goes, so the daemon never reads an early end
    exec 4> $spare/in 5< $spare/out 6< $spare/err
    kill "$keeper"
    $busybox_dir/rm -rf $spare
    $busybox_dir/cat <&6 >&2 4>&- 5<&- &
    from_daemon_err=$!
    exec 3<&0 6<&-
    # the host's side: when it ends, the daemon reads the end of its input, as on a connection of its own
    $busybox_dir/cat <&3 >&4 5<&- &
    from_host=$!
    exec 3<&- 4>&- 0< /dev/null
    $busybox_dir/cat <&5
    # the daemon ended (done, or it failed): the connection ends with it
    exec 5<&-
    kill $from_host 2>/dev/null
    wait $from_host $from_daemon_err
    # its successor loads once this build is done, not while it runs: both would share the CPU
    $busybox_dir/setsid $spares start 1 < /dev/null > /dev/null 2>&1 &
    exit 0
  done
fi
exec @NIX_DAEMON@ "$@"
