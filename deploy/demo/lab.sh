#!/usr/bin/env bash
# The full demo (deploy/demo/run.sh runs it as root): FerroLB doing its whole
# job in a lab of network namespaces on this machine.
#
#   [ferrolb-demo-router] eth0 198.51.100.1/24   2001:db8::1/64   GoBGP, AS 64513
#   [ferrolb-demo-client] eth0 198.51.100.2/24   2001:db8::2/64   default routes via the router
#   [ferrolb-demo-node1]  eth0 198.51.100.11/24  2001:db8::11/64  speaker, AS 64512
#   [ferrolb-demo-node2]  eth0 198.51.100.12/24  2001:db8::12/64  speaker
#   [ferrolb-demo-node3]  eth0 198.51.100.13/24  2001:db8::13/64  speaker
#          \______ br0 in [ferrolb-demo-lan] ______/
#
# It installs what it needs (tests/setup/install-demo-deps.sh), builds the
# binaries, runs the controller (standalone, once) and a speaker per node
# over a copy of deploy/demo/lab/, and prints each Service with its IPs and
# how it is announced; which node answers each layer-2 IP (the client's
# neighbour table) and a TCP connection from the client to each IP; the
# router's BGP table; then a node failure (kill -9 of the speaker answering
# for the dual-stack Service's IPv4 address) and the measured takeover.
#
# Every Service IP sits on each node's lo, as kube-proxy would put it, with
# arp_ignore/arp_announce so the nodes' kernels never answer ARP for it:
# only the speakers decide which node the client reaches. A socat per node
# and port stands in for the pods: it answers with the node's name. GoBGP
# keeps its routes to itself, so the demo copies the BGP Services' routes
# into the router's kernel (as zebra would) for the client's packets.
#
# Safety: only documentation addresses (198.51.100.0/24, 203.0.113.0/24,
# 2001:db8::/32), only inside namespaces named ferrolb-demo-*; nothing is
# added to the root namespace (the bridge has a namespace of its own, veths
# are made there with their peer moved straight into the host's namespace).
# Everything is stopped and deleted on exit, Ctrl-C or failure; a run killed
# with SIGKILL is cleaned up by the next. Every wait is bounded.
#
# Environment: CARGO_TARGET_DIR (default ~/.cache/ferrolb/target, as
# tests/run-all.sh); FERROLB_CONTROLLER_BIN and FERROLB_SPEAKER_BIN (both
# set: run these binaries, build nothing); KEEP=1 keeps the work directory
# (the controller's and the speakers' status files, every daemon's log).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

P=ferrolb-demo
NODES=(node1 node2 node3)
ROLES=(router client "${NODES[@]}")
declare -A MAC=([router]=02:fe:de:00:00:01 [client]=02:fe:de:00:00:02
    [node1]=02:fe:de:00:00:11 [node2]=02:fe:de:00:00:12 [node3]=02:fe:de:00:00:13)
declare -A V4=([router]=198.51.100.1 [client]=198.51.100.2
    [node1]=198.51.100.11 [node2]=198.51.100.12 [node3]=198.51.100.13)
declare -A V6=([router]=2001:db8::1 [client]=2001:db8::2
    [node1]=2001:db8::11 [node2]=2001:db8::12 [node3]=2001:db8::13)
SETTLE=30 # seconds: the bound of every wait for the daemons

# The demo's own stdout and stderr, kept as fds 7 and 8: a signal or a
# failure may come while a command's output goes elsewhere (wait_for sends
# its checks' to /dev/null), and the cleanup and the last words must be seen.
exec 7>&1 8>&2
say() { printf '%s\n' "$*"; }
step() { printf '\n==> %s\n' "$*"; }
die() {
    printf 'demo: %s\n' "$*" >&8
    exit 1
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# Runs a command inside the namespace of ROLE (router, client, node1, …).
in_ns() {
    local role=$1
    shift
    ip netns exec "$P-$role" "$@"
}
# Starts a daemon in the namespace of ROLE, its output to LOG (in the work
# directory); its pid (ip netns exec execs the program) goes to `pids` and
# to the variable `started`.
started=""
pids=()
start() {
    local role=$1 log=$2
    shift 2
    # 7>&- 8>&- 9>&-: the daemons hold neither the demo's output (whoever
    # reads it waits for its end) nor its lock (a run killed with SIGKILL
    # must not keep the next one out).
    ip netns exec "$P-$role" "$@" >"$work/$log" 2>&1 7>&- 8>&- 9>&- &
    started=$!
    disown "$started" # no "Killed" line from bash when the failure is staged
    pids+=("$started")
}

# ------------------------------------------------------------------ cleanup

work=""
# Kills every process inside the demo's namespaces and deletes them (on exit,
# and before starting for what a run killed with SIGKILL left behind).
delete_namespaces() {
    local ns pid
    for ns in $(ip netns list 2>/dev/null | awk -v p="^$P-" '$1 ~ p { print $1 }'); do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -9 "$pid" 2>/dev/null || true
        done
        ip netns del "$ns" 2>/dev/null || say "demo: could not delete namespace $ns" >&2
    done
}
alive() {
    local pid
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && return 0; done
    return 1
}
cleanup() {
    local rc=$? pid stopped=0 namespaces log
    trap - EXIT
    trap '' INT TERM # a second Ctrl-C does not cut the cleanup short
    set +e
    exec 1>&7 2>&8
    if ((rc != 0 && rc != 130 && rc != 143)) && [[ -n $work && -d $work ]]; then
        for log in "$work"/*.log; do
            [[ -s $log ]] || continue
            printf '\n--- last lines of %s ---\n' "${log##*/}" >&2
            tail -n 15 "$log" >&2
        done
    fi
    step "cleaning up"
    # SIGTERM first (the speakers withdraw their routes and leave the
    # membership), at most 5 s; then whatever runs in the namespaces is killed.
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null && stopped=$((stopped + 1)); done
    for ((i = 0; i < 50; i++)); do
        alive "${pids[@]}" || break
        sleep 0.1
    done
    namespaces=$(ip netns list 2>/dev/null | grep -c "^$P-")
    delete_namespaces
    say "stopped $stopped processes, deleted $namespaces namespaces ($P-*)"
    if [[ -n $work ]]; then
        if [[ ${KEEP:-} == 1 ]]; then
            rm -f "$work/.in-use"
            say "kept $work"
        else
            rm -rf "$work"
        fi
    fi
    exit "$rc"
}

# ------------------------------------------------------------------ readers

# One line per Service of the controller's status/services.yaml:
#   namespace/name|pool|ip ip|port/PROTO port/PROTO
services() {
    awk '
        function flush() {
            if (name != "") print ns "/" name "|" pool "|" ips "|" ports
            name = ns = pool = ips = ports = ""
        }
        /^---/ { flush(); section = "" }
        /^[a-z]/ { section = $1 }
        section == "metadata:" && /^  name: / { name = $2 }
        section == "metadata:" && /^  namespace: / { ns = $2 }
        /ferrolb.io\/ip-allocated-from-pool: / { pool = $2 }
        section == "spec:" && /^    port: / { port = $2 }
        section == "spec:" && /^    protocol: / { ports = ports (ports == "" ? "" : " ") port "/" $2 }
        section == "status:" && /^    - ip: / { gsub(/"/, "", $3); ips = ips (ips == "" ? "" : " ") $3 }
        END { flush() }
    ' "$work/status/services.yaml"
}

# "reason: message" of the controller's Warning Event about Service KEY.
warning_of() {
    awk -v key="$1" '
        function flush() { if (object == key && type == "Warning") print reason ": " message; type = object = reason = message = "" }
        /^- / { flush() }
        { line = $0; sub(/^[- ] /, "", line) }
        line ~ /^type: / { type = substr(line, 7) }
        line ~ /^object: / { object = substr(line, 9) }
        line ~ /^reason: / { reason = substr(line, 9) }
        line ~ /^message: / { message = substr(line, 10) }
        END { flush() }
    ' "$work/status/events.yaml"
}

# The IPs the speaker of NODE announces (its SpeakerStatus), one line each:
#   ip|layer2 (true or false)|peer peer
announced() {
    awk '
        function flush() { if (ip != "") print ip "|" l2 "|" peers; ip = ""; l2 = "false"; peers = "" }
        /^  [a-zA-Z]+:/ { flush(); inside = ($1 == "announced:") }
        inside && /^  - / { flush() }
        inside && /ip: / { v = $NF; gsub(/"/, "", v); ip = v }
        inside && /layer2: / { l2 = $NF }
        inside && /peer: / { peers = peers (peers == "" ? "" : " ") $NF }
        END { flush() }
    ' "$work/status/speaker-$1.yaml" 2>/dev/null || true
}

# The nodes whose speaker says it answers for IP on layer 2 (the killed
# speaker's file is left as it was, so it does not count).
killed=""
l2_owners() {
    local node owners=()
    for node in "${NODES[@]}"; do
        [[ $node == "$killed" ]] && continue
        announced "$node" | grep -q "^$1|true|" && owners+=("$node")
    done
    echo "${owners[*]}"
}

# The MAC of the client's neighbour entry for IP (nothing when it has none).
neighbour() {
    in_ns client ip neigh show to "$1" dev eth0 |
        awk '{ for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1) }'
}

node_of_mac() {
    local node
    for node in "${NODES[@]}"; do
        [[ ${MAC[$node]} == "${1,,}" ]] && echo "$node" && return
    done
    echo "?"
}

ping_once() {
    local family=-4
    [[ $1 == *:* ]] && family=-6
    in_ns client ping "$family" -c 1 -W 1 "$1" >/dev/null 2>&1
}

prefix_of() { if [[ $1 == *:* ]]; then echo "$1/128"; else echo "$1/32"; fi; }

# The router's BGP table of FAMILY (ipv4, ipv6), one "prefix next-hop" line
# per path.
rib() {
    in_ns router gobgp global rib -a "$1" 2>/dev/null | awk '$1 ~ /^\*/ { print $2, $3 }'
}

# The next hops the router has for IP's prefix, sorted, on one line.
next_hops() {
    local family=ipv4
    [[ $1 == *:* ]] && family=ipv6
    rib "$family" | awk -v p="$(prefix_of "$1")" '$1 == p { print $2 }' | sort -V | paste -sd' '
}

# Polls a command every 100 ms for at most SECONDS; dies with DESCRIPTION
# when it never succeeds.
wait_for() {
    local description=$1 seconds=$2
    shift 2
    local deadline=$(($(now_ms) + seconds * 1000))
    for ((i = 0; i < seconds * 10; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        (($(now_ms) < deadline)) || break
        sleep 0.1
    done
    die "$description: not within $seconds s"
}

# ------------------------------------------------------------------ start

[[ $(id -u) -eq 0 ]] || die "the full demo needs root (network namespaces, raw sockets): see deploy/demo/run.sh"
mkdir -p /run/lock
exec 9>/run/lock/ferrolb-demo.lock
flock -n 9 || die "another demo is running (it holds /run/lock/ferrolb-demo.lock)"

step "installing what the demo needs (tests/setup/install-demo-deps.sh)"
"$root/tests/setup/install-demo-deps.sh"

target="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb/target}"
if [[ -n ${FERROLB_CONTROLLER_BIN:-} && -n ${FERROLB_SPEAKER_BIN:-} ]]; then
    controller=$FERROLB_CONTROLLER_BIN
    speaker=$FERROLB_SPEAKER_BIN
    step "binaries: $controller, $speaker (FERROLB_CONTROLLER_BIN, FERROLB_SPEAKER_BIN)"
else
    step "building ferrolb-controller and ferrolb-speaker (cargo build --release, into $target)"
    command -v cargo >/dev/null ||
        die "cargo not found: install a current stable Rust toolchain (https://rustup.rs), then run this again"
    # One package per cargo run, as the tests and the allocation-only demo
    # build them: built together, their dependencies' features would be
    # unified differently, and those builds could not be reused.
    for bin in ferrolb-controller ferrolb-speaker; do
        (cd "$root" && CARGO_TARGET_DIR="$target" cargo build --release --locked -p "$bin" --bin "$bin")
    done
    controller="$target/release/ferrolb-controller"
    speaker="$target/release/ferrolb-speaker"
fi

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# What a run killed with SIGKILL left behind: its namespaces (and whatever
# runs in them), its work directory (marked as in use; KEEP=1 unmarks).
delete_namespaces
for stale in "${TMPDIR:-/tmp}"/ferrolb-demo.*/.in-use; do
    [[ -e $stale ]] && rm -rf "${stale%/.in-use}"
done

step "network namespaces $P-{lan,router,client,node1,node2,node3}"
ip netns add "$P-lan"
ip -n "$P-lan" link set lo up
ip -n "$P-lan" link add br0 type bridge mcast_snooping 0
ip -n "$P-lan" link set br0 up
for role in "${ROLES[@]}"; do
    ns="$P-$role"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # No IPv6 duplicate address detection (set before eth0 arrives, so that it
    # inherits it): a tentative address would delay the first packets.
    in_ns "$role" sysctl -q -w net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
    ip -n "$P-lan" link add "p-$role" type veth peer name eth0 netns "$ns"
    ip -n "$P-lan" link set "p-$role" master br0 up
    ip -n "$ns" link set eth0 address "${MAC[$role]}" up
    ip -n "$ns" addr add "${V4[$role]}/24" dev eth0
    ip -n "$ns" addr add "${V6[$role]}/64" dev eth0 nodad
    printf '  %-7s eth0 %-18s %-16s %s\n' "$role" "${V4[$role]}/24" "${V6[$role]}/64" "${MAC[$role]}"
done
for node in "${NODES[@]}"; do
    # The node's kernel never answers ARP for the Service IPs on its lo.
    in_ns "$node" sysctl -q -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
done
# The router forwards the client's packets to the BGP Services' IPs (and does
# not redirect the client to a node: the packets go through the router).
in_ns router sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
    net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.eth0.send_redirects=0
ip -n "$P-client" route add default via "${V4[router]}"
ip -n "$P-client" -6 route add default via "${V6[router]}"

work="$(mktemp -d "${TMPDIR:-/tmp}/ferrolb-demo.XXXXXX")"
touch "$work/.in-use"
cp "$here"/lab/*.yaml "$work/"

step "controller: ferrolb-controller --standalone DIR --once (DIR: a copy of deploy/demo/lab/)"
"$controller" --standalone "$work" --once
mapfile -t svc < <(services)
declare -A all_ips=() tcp_ports=()
for line in "${svc[@]}"; do
    IFS='|' read -r _ _ ips ports <<<"$line"
    for ip in $ips; do all_ips[$ip]=1; done
    for p in $ports; do [[ $p == */TCP ]] && tcp_ports[${p%/TCP}]=1; done
done
say "  ${#svc[@]} Services, ${#all_ips[@]} IPs assigned (DIR/status/services.yaml, DIR/status/events.yaml)"

mapfile -t ports_sorted < <(printf '%s\n' "${!tcp_ports[@]}" | sort -n)
step "nodes: every Service IP on lo; a responder on TCP ${ports_sorted[*]} answering with the node's name"
for node in "${NODES[@]}"; do
    for ip in "${!all_ips[@]}"; do
        if [[ $ip == *:* ]]; then
            ip -n "$P-$node" addr add "$ip/128" dev lo nodad
        else
            ip -n "$P-$node" addr add "$ip/32" dev lo
        fi
    done
    for port in "${ports_sorted[@]}"; do
        start "$node" "socat-$node-$port.log" \
            socat "TCP6-LISTEN:$port,ipv6only=0,reuseaddr,fork" "SYSTEM:echo $node"
    done
done

step "router: gobgpd, AS 64513; each node a neighbour twice (IPv4 unicast over IPv4, IPv6 unicast over IPv6)"
{
    printf '[global.config]\n  as = 64513\n  router-id = "%s"\n  local-address-list = ["%s", "%s"]\n' \
        "${V4[router]}" "${V4[router]}" "${V6[router]}"
    for node in "${NODES[@]}"; do
        for family in ipv4 ipv6; do
            if [[ $family == ipv4 ]]; then address=${V4[$node]}; else address=${V6[$node]}; fi
            printf '[[neighbors]]\n  [neighbors.config]\n    neighbor-address = "%s"\n    peer-as = 64512\n' "$address"
            printf '  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = "%s-unicast"\n' "$family"
        done
    done
} >"$work/gobgpd.toml"
start router gobgpd.log gobgpd -f "$work/gobgpd.toml" -t toml -p --api-hosts 127.0.0.1:50051 --pprof-disable
wait_for "gobgpd's API" 10 in_ns router gobgp neighbor

step "speakers: ferrolb-speaker --standalone DIR --node NODE in each node's namespace"
declare -A speaker_pid=()
for node in "${NODES[@]}"; do
    start "$node" "speaker-$node.log" env RUST_LOG=info NO_COLOR=1 "$speaker" --standalone "$work" --node "$node"
    speaker_pid[$node]=$started
done

# ------------------------------------------------------------------ convergence

# Each IP is layer 2 (a speaker answers for it) or BGP (the speakers announce
# it to peers): the speakers' status files say which.
l2_ips=() bgp_ips=()
classified() {
    local ip node lines
    l2_ips=() bgp_ips=()
    lines=$(for node in "${NODES[@]}"; do announced "$node"; done)
    for ip in "${!all_ips[@]}"; do
        if grep -q "^$ip|true|" <<<"$lines"; then
            l2_ips+=("$ip")
        elif grep -q "^$ip|false|." <<<"$lines"; then
            bgp_ips+=("$ip")
        else
            return 1
        fi
    done
    mapfile -t l2_ips < <(printf '%s\n' "${l2_ips[@]}" | sort -V)
    mapfile -t bgp_ips < <(printf '%s\n' "${bgp_ips[@]}" | sort -V)
}
# Layer 2 is settled when every speaker's membership runs and each IP has
# exactly one owner, whose MAC the client's neighbour entry holds after a
# ping (right after the start the speakers join one after another, and an
# IP may move once).
l2_settled() {
    local node ip owner
    for node in "${NODES[@]}"; do
        grep -q "membership: running" "$work/status/speaker-$node.yaml" 2>/dev/null || return 1
    done
    for ip in "${l2_ips[@]}"; do
        owner=$(l2_owners "$ip")
        [[ -n $owner && $owner != *" "* ]] || return 1
        ping_once "$ip" || return 1
        [[ $(neighbour "$ip") == "${MAC[$owner]}" ]] || return 1
    done
}
bgp_settled() {
    local ip
    for ip in "${bgp_ips[@]}"; do
        [[ $(next_hops "$ip" | wc -w) -eq ${#NODES[@]} ]] || return 1
    done
}
wait_for "every Service IP in a speaker's status" "$SETTLE" classified
classified
wait_for "one answering node for each layer-2 IP" "$SETTLE" l2_settled
wait_for "every node's routes at the router" "$SETTLE" bgp_settled

# ------------------------------------------------------------------ report

is_l2() { printf '%s\n' "${l2_ips[@]}" | grep -qxF "$1"; }
# How IP is announced, for the Service table.
how() {
    local ip=$1 node nodes=()
    if is_l2 "$ip"; then
        if [[ $ip == *:* ]]; then echo "layer 2: $(l2_owners "$ip") answers NDP"; else echo "layer 2: $(l2_owners "$ip") answers ARP"; fi
    else
        for node in "${NODES[@]}"; do
            announced "$node" | grep -q "^$ip|false|." && nodes+=("$node")
        done
        echo "BGP: ${nodes[*]} announce it"
    fi
}

step "Services: IPs from the controller (status/services.yaml), how they are announced from the speakers (status/speaker-NODE.yaml)"
printf '  %-24s %-7s %-18s %s\n' SERVICE POOL IP ANNOUNCED
declare -A first_of_ip=()
for line in "${svc[@]}"; do
    IFS='|' read -r key pool ips _ <<<"$line"
    if [[ -z $ips ]]; then
        printf '  %-24s %-7s %-18s %s\n' "$key" - "<pending>" "$(warning_of "$key")"
        continue
    fi
    for ip in $ips; do
        note=""
        if [[ -n ${first_of_ip[$ip]:-} ]]; then
            note=" (IP shared with ${first_of_ip[$ip]})"
        else
            first_of_ip[$ip]=$key
        fi
        printf '  %-24s %-7s %-18s %s\n' "$key" "$pool" "$ip" "$(how "$ip")$note"
        key="" pool=""
    done
done

# The TCP ports of the Services holding IP.
ports_of() {
    local line ips ports p
    for line in "${svc[@]}"; do
        IFS='|' read -r _ _ ips ports <<<"$line"
        [[ " $ips " == *" $1 "* ]] || continue
        for p in $ports; do [[ $p == */TCP ]] && echo "${p%/TCP}"; done
    done | sort -nu
}
# Connects from the client to each TCP port of IP's Services; sets tcp_out
# to ":80 → node2  :443 → node2" (the responder's answer: its node), with
# FAILED for a connection that got no answer, and then tcp_failed=1.
tcp_out="" tcp_failed=0
tcp_check() {
    local ip=$1 port answer
    tcp_out=""
    for port in $(ports_of "$ip"); do
        answer=$(in_ns client timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" && head -c 64 <&3' _ "$ip" "$port" 2>/dev/null) || answer=""
        answer=${answer//[$'\r\n']/}
        if [[ -z $answer ]]; then
            answer=FAILED
            tcp_failed=1
        fi
        tcp_out+="${tcp_out:+  }:$port → $answer"
    done
}
tcp_ok() { ((tcp_failed == 0)) || die "a TCP connection from the client failed ($1)"; }

step "layer 2, from the client: who answered (its neighbour table, ip neigh) and a TCP connection to each IP"
printf '  %-18s %-36s %s\n' IP "NEIGHBOUR ENTRY (MAC = NODE)" "TCP FROM THE CLIENT (PORT → WHO ANSWERED)"
for ip in "${l2_ips[@]}"; do
    mac=$(neighbour "$ip")
    tcp_check "$ip"
    printf '  %-18s %-36s %s\n' "$ip" "$mac = $(node_of_mac "$mac")" "$tcp_out"
done
tcp_ok "layer 2"

# GoBGP keeps its table to itself: copy the BGP Services' routes into the
# router's kernel (what zebra would do), so that the client's packets follow.
install_routes() {
    local ip hop args
    for ip in "${bgp_ips[@]}"; do
        args=()
        for hop in $(next_hops "$ip"); do args+=(nexthop via "$hop" dev eth0); done
        ((${#args[@]})) && ip -n "$P-router" route replace "$(prefix_of "$ip")" "${args[@]}"
    done
}
kernel_route() {
    local family=-4
    [[ $1 == *:* ]] && family=-6
    ip -n "$P-router" "$family" route show "$1" |
        tr -s ' \n\t' ' ' | sed -E 's/ (dev eth0|weight 1|metric [0-9]+|pref medium)//g; s/ *$//'
}

step "BGP, at the router: gobgp global rib -a ipv4 / -a ipv6 (next hops, communities)"
for family in ipv4 ipv6; do
    in_ns router gobgp global rib -a "$family" | sed 's/^/  /'
done
install_routes
say "  the router's kernel routes (copied from GoBGP's table, as zebra would), which the client's packets follow:"
for ip in "${bgp_ips[@]}"; do say "    $(kernel_route "$ip")"; done
printf '  %-18s %s\n' IP "TCP FROM THE CLIENT THROUGH THE ROUTER (PORT → WHO ANSWERED; ECMP picks the node)"
for ip in "${bgp_ips[@]}"; do
    tcp_check "$ip"
    printf '  %-18s %s\n' "$ip" "$tcp_out"
done
tcp_ok BGP

# ------------------------------------------------------------------ failure

for ip in "${l2_ips[@]}"; do [[ $ip != *:* ]] && watched=$ip && break; done
victim=$(l2_owners "$watched")
mapfile -t moving < <(for ip in "${l2_ips[@]}"; do [[ $(l2_owners "$ip") == "$victim" ]] && echo "$ip"; done)
list=$(printf '%s, ' "${moving[@]}")
step "node failure: kill -9 of $victim's speaker (no goodbye); $victim answers for ${list%, }"
# The client's neighbour entries are watched, not refreshed (no ping, no ARP
# from the client): the new owner's gratuitous ARP / unsolicited NA moves them.
t0=$(now_ms)
kill -9 "${speaker_pid[$victim]}"
killed=$victim
declare -A moved_after=()
for ((i = 0; i < SETTLE * 100; i++)); do
    waiting=0
    for ip in "${moving[@]}"; do
        [[ -n ${moved_after[$ip]:-} ]] && continue
        mac=$(neighbour "$ip")
        if [[ -n $mac && ${mac,,} != "${MAC[$victim]}" ]]; then
            moved_after[$ip]=$(($(now_ms) - t0))
        else
            waiting=1
        fi
    done
    ((waiting)) || break
    (($(now_ms) - t0 < SETTLE * 1000)) || die "the client's neighbour entries did not leave $victim within $SETTLE s"
    sleep 0.01
done
((waiting == 0)) || die "the client's neighbour entries did not leave $victim"
printf '  %-18s %-36s %s\n' IP "NEIGHBOUR ENTRY NOW (MOVED AFTER)" "TCP FROM THE CLIENT"
took=0
for ip in "${moving[@]}"; do
    mac=$(neighbour "$ip")
    tcp_check "$ip"
    printf '  %-18s %-36s %s\n' "$ip" "$mac = $(node_of_mac "$mac") (${moved_after[$ip]} ms)" "$tcp_out"
    ((moved_after[$ip] > took)) && took=${moved_after[$ip]}
done
tcp_ok "after the takeover"
# At the router, the killed speaker's BGP sessions closed with it.
without_victim() {
    local ip
    for ip in "${bgp_ips[@]}"; do
        [[ " $(next_hops "$ip") " != *" ${V4[$victim]} "* && " $(next_hops "$ip") " != *" ${V6[$victim]} "* ]] || return 1
    done
}
wait_for "the router dropping $victim's routes" "$SETTLE" without_victim
install_routes
for ip in "${bgp_ips[@]}"; do
    tcp_check "$ip"
    printf '  router: %-20s next hops %s (%s'\''s sessions closed with its speaker); TCP %s\n' \
        "$(prefix_of "$ip")" "$(next_hops "$ip" | sed 's/ /, /g')" "$victim" "$tcp_out"
done
tcp_ok "BGP after the failure"
printf '\ntakeover: %d ms from kill -9 of %s'\''s speaker until the client'\''s neighbour entries for %s named other nodes\n' \
    "$took" "$victim" "${list%, }"
