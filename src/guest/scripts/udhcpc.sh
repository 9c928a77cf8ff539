#!@BUSYBOX_DIR@/sh
# busybox udhcpc's hook, for a network that hands out leases: the lease's address and default
# route on the interface, and for rc.builder.sh in /run/dhcp-lease the lease's DNS server and
# subnet (where the host answers): a NAT's subnet is the host's choice, not a constant.
case $1 in
  bound|renew)
    ip addr flush dev $interface
    ip addr add $ip/${mask:-24} dev $interface
    for r in $router; do ip route add default via $r dev $interface; break; done
    eval "$(ipcalc -n -p $ip ${subnet:-255.255.255.0})"
    set -- $dns
    printf 'lease_dns=%s\nlease_net=%s/%s\n' "$1" "$NETWORK" "$PREFIX" > /run/dhcp-lease ;;
esac
exit 0
