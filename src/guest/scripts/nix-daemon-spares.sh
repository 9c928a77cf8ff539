#!@BUSYBOX_DIR@/sh
# Spare nix-daemons (rendered by src/guest/daemon.ts): `nix-daemon-spares start N` starts N, each
# `nix-daemon --stdio` with its input and output on FIFOs, loaded and waiting for a connection
# that the nix-daemon wrapper (nix-daemon.sh) hands it. rc starts the first ones once the store
# is up; each connection that takes one starts its successor. A keeper (a sleep) holds every FIFO
# open both ways until then, so neither the daemon's opens nor its first read end early. The
# shutdown ends them with every other process (shutdown.sh).
@SETTINGS@
export PATH=$busybox_dir
exec < /dev/null > /dev/null 2>&1
# Loading Nix takes seconds of CPU under emulation: spares load at the lowest priority, so sshd's
# handshakes, the host's registration and a running build come first; the wrapper that takes a
# spare puts it back to the usual one before the build reaches it. Absolute values: busybox's
# renice -n adds to the current one.
renice 19 -p $$ > /dev/null 2>&1
spawn() {
  id=$$.$1
  spare=$spares_dir/$id
  mkdir -p -m 0700 $spares_dir/ready $spare && mkfifo -m 0600 $spare/in $spare/out $spare/err || return 1
  exec 3<> $spare/in 4<> $spare/out 5<> $spare/err
  sleep 2147483647 &
  keeper=$!
  exec 3>&- 4>&- 5>&-
  # the environment an SSH session gives it
  PATH=$session_path HOME=/root USER=root LOGNAME=root $nix_daemon --stdio < $spare/in > $spare/out 2> $spare/err &
  pid=$!
  # offered once its FIFOs are open: a connection may take it while Nix still loads
  until [ -p /proc/$pid/fd/0 ] && [ -p /proc/$pid/fd/1 ] && [ -p /proc/$pid/fd/2 ]; do
    kill -0 $pid 2>/dev/null || { kill $keeper; rm -rf $spare; return 1; }
    usleep 10000
  done
  echo "$pid $keeper" > $spares_dir/.$id && mv $spares_dir/.$id $spares_dir/ready/$id
}
case $1 in
  start)
    # Nix creates a missing database under a shared lock: two Nix processes that both find none
    # (a fresh disk, a database dropped after an unclean stop) race and one fails. A spare waits
    # until the first Nix (the host's registration, or a build's own daemon) has made it: Nix
    # writes the schema file once the tables exist.
    until [ -s $nix_db/schema ]; do usleep 200000; done
    n=${2:-1}
    while [ "$n" -gt 0 ]; do spawn $n; n=$((n - 1)); done ;;
esac
exit 0
