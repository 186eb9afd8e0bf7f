#!/bin/sh
# Start of every node of ferrolb.clab.yml. containerlab attaches the lab's
# links (eth1, eth2, ...) once the container runs, so this waits for them,
# configures them from the environment, then runs the node's own command
# ("$@", e.g. k3s server ...). Needs `ip` in the image (BusyBox's will do).
#
#   LAB_BRIDGE="eth1 eth2 ..."  make br0 of these interfaces (the LAN switch)
#   LAB_ADDRESSES="A/LEN ..."   put these addresses on eth1
set -eu

wait_for() {
    n=0
    until ip link show "$1" >/dev/null 2>&1; do
        n=$((n + 1))
        if [ "$n" -gt 300 ]; then
            echo "lab-node: $1 did not appear within 60 s" >&2
            exit 1
        fi
        sleep 0.2
    done
}

if [ -n "${LAB_BRIDGE:-}" ]; then
    ip link add br0 type bridge
    ip link set br0 up
    for dev in $LAB_BRIDGE; do
        wait_for "$dev"
        ip link set "$dev" master br0
        ip link set "$dev" up
    done
fi

if [ -n "${LAB_ADDRESSES:-}" ]; then
    wait_for eth1
    for address in $LAB_ADDRESSES; do
        ip addr add "$address" dev eth1
    done
    ip link set eth1 up
fi

exec "$@"
