#!@BUSYBOX_DIR@/sh
# busybox udhcpc's hook, for a network that hands out leases: the lease's address and default
# route on the interface, and for rc.builder.sh in /run/dhcp-lease the lease's DNS server and
# subnet (where the host answers): a NAT's subnet is the host's choice, not a constant.
case $1 in
  bound|renew)
    ip addr flush dev $interface
    ip addr add $ip/${mask:-24} dev $interface
    for r in $router; do ip route add default via $r dev $interface; break; done
    NETWORK= PREFIX=
    eval "$(ipcalc -n -p $ip ${subnet:-255.255.255.0})"
    set -- $dns
    # what the lease leaves unsaid (or a busybox without ipcalc) keeps the plan's value
    { [ -z "$1" ] || echo "lease_dns=$1"; [ -z "$NETWORK" ] || [ -z "$PREFIX" ] || echo "lease_net=$NETWORK/$PREFIX"; } > /run/dhcp-lease ;;
esac
exit 0
