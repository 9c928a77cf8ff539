#!@BUSYBOX_DIR@/sh
# nix-daemon, as the host's Nix starts it for every remote build (nix-daemon --stdio): room
# first, when a failed build left the disk short of it, then the real daemon.
@COLLECTOR@ if-short
exec @NIX_DAEMON@ "$@"
