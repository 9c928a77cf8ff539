#!@BUSYBOX_DIR@/sh
# The power button: vfkit's Stop (Virtualization.framework's requestStop) and QEMU's
# system_powerdown on aarch64 virt press KEY_POWER on gpio-keys, the power key a device tree
# describes. A press powers the guest off the clean way (busybox poweroff: init runs
# shutdown.sh). Without such a key (QEMU's microvm) there is nothing to listen to.
@SETTINGS@
export PATH=$busybox_dir
t() { read -r up _ < /proc/uptime; echo "[power-button $up] $*" > /dev/console; }
# Reads one struct input_event (24 bytes on 64-bit: time, u16 type, u16 code, s32 value) at a
# time from the device held open; a press is type EV_KEY (1), code KEY_POWER (116), value 1,
# little-endian.
listen() {
  exec 3< "$1" || return 1
  t "listening on $1 ($2)"
  while event=$(dd bs=24 count=1 <&3 2>/dev/null | hexdump -v -e '24/1 "%02x"') && [ -n "$event" ]; do
    case $event in
      *0100740001000000) t "pressed: powering off"; poweroff; return 0 ;;
    esac
  done
  t "$1 cannot be read"
  return 1
}
for input in /sys/class/input/input*; do
  read -r name < "$input/name" 2>/dev/null || continue
  [ "$name" = "$key_name" ] || continue
  for event in "$input"/event*; do
    [ -e "$event" ] || continue
    device=/dev/input/${event##*/}
    # devtmpfs makes the node as the device appears
    n=0
    while [ ! -c "$device" ] && [ $n -lt 100 ]; do n=$((n + 1)); usleep 10000; done
    listen "$device" "$name" &
  done
done
wait
