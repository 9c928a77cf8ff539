#!@BUSYBOX_DIR@/sh
# The guest's boot script, run by busybox init as sysinit. Rendered by src/guest/init.ts: the
# settings block and the module lists are filled in when the image is built; what the launch
# plan decides (share transport, network) comes from the kernel command line at boot.
#
# sshd starts as soon as /usr and its host key are there; the ready line is printed only once
# everything a build needs (store overlay, binfmt, the build network rules) is in place too.
@SETTINGS@
export PATH=$busybox_dir HOME=/root
# timing lines for boot profiling; read, not cut, so no process is spawned
t() { read -r up _ < /proc/uptime; echo "[rc $up] $*" > /dev/console; }
fail() { t "$*"; echo "$failed_marker: $*" > /dev/console; exit 1; }
# loads modules in parallel and waits for them (busybox insmod forks, it does not exec)
load() { pids=; for m; do { insmod $modules_dir/$m.ko || t "insmod $m FAILED"; } & pids="$pids $!"; done; wait $pids; }
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -a || fail "mount -a (/etc/fstab)"

# What the launch plan says (lb.* on the kernel command line): how the shares come (virtiofs or
# 9p), and the network: the guest's address and gateway (or dhcp), its DNS, and where the host's
# loopback answers (builds are kept off it).
shares=9p address= gateway= dns= hostnet= sshvsock=
read -r cmdline < /proc/cmdline
set -f
for arg in $cmdline; do
  case $arg in
    lb.shares=*) shares=${arg#*=} ;;
    lb.address=*) address=${arg#*=} ;;
    lb.gateway=*) gateway=${arg#*=} ;;
    lb.dns=*) dns=${arg#*=} ;;
    lb.hostnet=*) hostnet=${arg#*=} ;;
    lb.sshvsock=*) sshvsock=${arg#*=} ;;
  esac
done
set +f
# share TAG DIR [9P OPTIONS]: a host directory, read-only, over the transport the plan chose
share() {
  if [ "$shares" = virtiofs ]; then
    mount -t virtiofs -o ro "$1" "$2"
  else
    mount -t 9p -o "trans=virtio,version=9p2000.L,${3:+$3,}ro" "$1" "$2"
  fi
}

t modules
@LOAD_BOOT@
case $shares in
  virtiofs)
    @LOAD_VIRTIOFS@
    ;;
  *)
    @LOAD_9P@
    ;;
esac
# the PCI transport only where there is PCI (aarch64 virt): on microvm the kernel finds none
set -- /sys/bus/pci/devices/*
if [ -e "$1" ]; then
  @LOAD_PCI@
fi
# The NIC comes up as early as it can: until the guest answers, a probe of the host hangs.
{
  @LOAD_NET@
  ip link set lo up
  ip link set eth0 up
  if [ "$address" = dhcp ]; then
    udhcpc -i eth0 -f -q -n -t 60 -T 1 -s $dhcp_script > /dev/null 2>&1 || fail "no DHCP lease on eth0"
  else
    [ -n "$address" ] && [ -n "$gateway" ] || fail "no lb.address= and lb.gateway= on the kernel command line"
    ip addr add $address dev eth0
    ip route add default via $gateway
    # Announced at once (gratuitous ARP): QEMU's user network learns the guest's MAC from it, so
    # the host's connections reach sshd as soon as it listens (without it, under TCG, the banner
    # came 1.4 s after sshd listened: the user network's forwarded connections waited on ARP).
    arping -U -c 1 -I eth0 ${address%/*} > /dev/null 2>&1 &
  fi
  t network
} &
network=$!
[ -n "$dns" ] && echo "nameserver $dns" > /etc/resolv.conf

t keys
share $usr_tag /usr $nine_cache &
usr=$!
# The keys, copied out of the config share owned by root with tight modes: sshd's host key
# first, so sshd can start; the rest while it starts.
mkdir -p $config_dir && share $config_tag $config_dir || fail "mount $config_tag"
umask 077
cp $config_dir/$host_key $config_dir/$host_key_pub /etc/ssh/ || fail "no $host_key in the config share"

# The instance disk, set up in the background when the config share says it is attached: ext4
# made on first boot (no superblock magic), grown when the device grew since the last boot (the
# size is recorded on the disk), mounted at the store's read-write layer. Whiteouts at the top of
# the upper layer are dropped: a host path the guest's GC deleted shows through again.
disk=
if [ -e $config_dir/$disk_file ]; then
  read -r disk_device gcmin gcmax < $config_dir/$disk_file
  dev=/dev/$disk_device
  {
    @LOAD_DISK@
    t disk
    n=0
    while [ ! -b $dev ]; do n=$((n + 1)); [ $n -gt 500 ] && fail "no disk device $dev"; usleep 10000; done
    # mkfs.ext4 and resize2fs are the userland's, in /usr
    while [ ! -x $mkfs_ext4 ]; do usleep 10000; done
    read -r size < /sys/block/$disk_device/size
    known=
    if [ "$(hexdump -s 1080 -n 2 -e '2/1 "%02x"' $dev)" != 53ef ]; then
      t mkfs
      $mkfs_ext4 -q -F -L linux-builder -E lazy_itable_init=1,lazy_journal_init=1,nodiscard $dev > /dev/console 2>&1 || fail "mkfs.ext4 $dev"
      known=$size
    fi
    mount -t ext4 -o noatime,discard $dev $rw_store || fail "mount $dev (ext4) on $rw_store"
    [ -z "$known" ] && [ -f $rw_store/.sectors ] && read -r known < $rw_store/.sectors
    if [ "$known" != "$size" ]; then
      t resize2fs
      $resize2fs $dev > /dev/console 2>&1 || fail "resize2fs $dev"
    fi
    echo $size > $rw_store/.sectors
    mkdir -p $rw_store/upper $rw_store/work $rw_store/var/nix $rw_store/tmp && chmod 1777 $rw_store/tmp || fail "directories on $rw_store"
    find $rw_store/upper -maxdepth 1 -type c -exec rm -f {} +
    # Nix writes its schema file without fsync: after an unclean stop (a killed VM) it can be
    # empty and every build then fails; the database starts over, the host paths are registered
    # again (their roots go with it: the host takes each root for a path the database holds).
    s=$rw_store/var/nix/db/schema
    if [ -e $s ] && [ ! -s $s ]; then t "empty Nix database schema after an unclean stop: a fresh database"; rm -rf ${s%/schema} $rw_store${host_roots#/nix}; fi
    t disk-ready
  } &
  disk=$!
fi
wait $usr || fail "mount $usr_tag /usr"

t sshd
mkdir -p /run/sshd
# in the background: the rest of the config, the store and binfmt are set up while sshd starts
{ LD_LIBRARY_PATH=$ssh_dir/lib $ssh_dir/sshd $sshd_flags -f /etc/ssh/sshd_config -E $sshd_log || touch /run/sshd.failed; } &
cp $config_dir/$authorized_keys /root/.ssh/ || fail "no $authorized_keys in the config share"
cp $config_dir/$nix_conf /etc/nix/ 2>/dev/null
cp $config_dir/$hostname_file /etc/ 2>/dev/null
cp $config_dir/$binfmt_file /run/ 2>/dev/null
rosetta=
[ -e $config_dir/$rosetta_file ] && rosetta=1
umask 022
chmod 0644 /etc/ssh/$host_key_pub /etc/nix/$nix_conf /etc/$hostname_file 2>/dev/null
umount $config_dir
# SSH over vsock (vfkit relays a unix socket on the host to this port): socat hands each
# connection to sshd on the loopback; until sshd listens a connection fails and the host retries
if [ -n "$sshvsock" ]; then
  @LOAD_VSOCK@
  [ -x $socat ] || fail "SSH over vsock needs $socat in /usr"
  # -lm: what goes wrong before it listens reaches the console; what a connection's child says
  # afterwards (a readiness probe that hangs up: "Broken pipe") goes to syslog, which is none.
  $socat -lm VSOCK-LISTEN:$sshvsock,reuseaddr,fork TCP4:127.0.0.1:22 > /dev/console 2>&1 &
fi
# the first ssh session runs /bin/sh from /usr: page it in now, not while the host waits
/bin/sh -c : &
@LOAD_LATE@

t store
share $store_tag /nix/.ro-store $nine_cache || fail "mount $store_tag"
if [ -n "$disk" ]; then
  wait $disk || exit 1
else
  mount -t tmpfs -o mode=0755 tmpfs $rw_store
  mkdir -p $rw_store/upper $rw_store/work
fi
# the upper layer's mode becomes the mode of /nix/store
chmod 0755 $rw_store/upper
mount -t overlay -o lowerdir=/nix/.ro-store,upperdir=$rw_store/upper,workdir=$rw_store/work overlay /nix/store || fail "overlay /nix/store"
# with a disk, the Nix database and the build directories live on it, never in RAM
if [ -n "$disk" ]; then
  mount --bind $rw_store/var/nix /nix/var/nix || fail "bind /nix/var/nix"
  mount --bind $rw_store/tmp /tmp || fail "bind /tmp"
fi
# the collector (collect-garbage.sh) runs once the store is up, from the thresholds the disk
# file gave; without a disk there is nothing to collect
if [ -n "$disk" ] && [ -n "$gcmax" ]; then
  echo "$gcmin $gcmax" > $gc_thresholds
  $collector loop &
fi
# the power button (power-button.sh), where a device tree describes the machine's power key
if [ -d /sys/firmware/devicetree/base ]; then
  {
    @LOAD_POWER@
    $power_button
  } &
fi

t binfmt
# Rosetta (vfkit's rosetta share; a stand-in directory in tests) is mounted before binfmt
# registers it: F opens the interpreter at registration
if [ -n "$rosetta" ]; then
  mkdir -p $rosetta_dir && share $rosetta_tag $rosetta_dir || fail "mount the Rosetta share ($rosetta_tag) on $rosetta_dir"
fi
if [ -f /run/$binfmt_file ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  while IFS= read -r entry; do
    [ -n "$entry" ] && { printf '%s\n' "$entry" > /proc/sys/fs/binfmt_misc/register || fail "binfmt entry: $entry"; }
  done < /run/$binfmt_file
fi
# Builds run as build users: every user but root is kept off the addresses where the host's
# loopback answers (a fixed-output derivation still reaches the outside through the NAT, and
# DNS), while root's traffic (sshd's replies among it) is untouched. iproute2's ip: busybox's
# knows no uidrange.
# A leased address comes with its DNS server and subnet (udhcpc.sh): they replace lb.dns= and
# lb.hostnet=, which name the NAT's usual ones.
if [ "$address" = dhcp ]; then
  wait $network
  [ -f /run/dhcp-lease ] && . /run/dhcp-lease
  dns=${lease_dns:-$dns} hostnet=${lease_net:-$hostnet}
  [ -n "$dns" ] && echo "nameserver $dns" > /etc/resolv.conf
fi
[ -n "$hostnet" ] && [ -n "$dns" ] || fail "no lb.hostnet= and lb.dns= on the kernel command line: builds would reach the host's loopback"
printf '%s\n' "rule add uidrange 1-4294967294 to $dns/32 lookup main pref 100" "rule add uidrange 1-4294967294 to $hostnet prohibit pref 101" \
  | $iproute2 -batch - || fail "could not keep builds off the host's loopback (ip rule)"
hostname -F /etc/$hostname_file

t wait-sshd
wait $network
# sshd daemonizes before it listens; its pid file appears once it listens
n=0
while [ ! -s /run/sshd.pid ]; do
  [ -e /run/sshd.failed ] && fail "sshd did not start, see $sshd_log"
  n=$((n + 1)); [ $n -gt 1000 ] && fail "sshd is not listening after 10 s, see $sshd_log"
  usleep 10000
done
t $ready_marker
echo $ready_marker > /dev/console
# spare nix-daemons for the first builds (nix-daemon-spares.sh), loaded once the boot is done so
# they never delay it; a build that comes before one has loaded takes it as it is
$spares start $spare_daemons &
