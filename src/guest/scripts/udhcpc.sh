#!@BUSYBOX_DIR@/sh
# busybox udhcpc's hook, for a network that hands out leases: the lease's address and default
# route on the interface. DNS is the one the launch plan named (rc.builder.sh).
case $1 in
  bound|renew)
    ip addr flush dev $interface
    ip addr add $ip/${mask:-24} dev $interface
    for r in $router; do ip route add default via $r dev $interface; break; done ;;
esac
exit 0
