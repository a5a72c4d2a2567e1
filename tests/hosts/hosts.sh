# tests/hosts/hosts.sh - simulated hosts for the it_hosts_* tests (bash;
# sourced after tests/lib.sh, not run).
#
# hosts_up N makes hosts h0..hN on one machine: each a network namespace
# with a veth pair on a bridge of its own subnet 10.231.X.0/24 (h0 is the
# "login node" that runs mpirun or slurmctld, hK has 10.231.X.(10+K)), and
# on_host K CMD runs CMD there with the host's own hostname (a UTS
# namespace), its own /dev/shm and /tmp-for-launchers (bind mounts in a
# mount namespace) and an /etc/hosts that names every simulated host.
#
# Safety, in this order and mandatory:
#   - nothing happens unless we are root and the tools work: else the test
#     is skipped (exit 77) with the reason;
#   - before any link exists, `ip route add unreachable 10.231.X.0/24
#     metric 4000` in the root namespace, so no packet for the subnet can
#     leave through the real network (the bridge carries no root address,
#     and the root namespace never talks to the hosts: every command runs
#     inside them);
#   - the namespaces get no default route (only their subnet);
#   - everything made is removed on exit, on failure and on a signal
#     (hosts_down from the EXIT trap: processes in the namespaces killed
#     by PID, namespaces, links, the route, the subnet's claim); a test
#     killed with SIGKILL leaves its claim with a dead PID, and the next
#     hosts_up removes what that test left.
# Concurrent tests (ctest -j) each claim their own subnet X (an atomic
# mkdir under /run/paramd-hosts), so names, addresses and ports never meet.
HOSTS_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HOSTS_CLAIMS=/run/paramd-hosts
HX=""          # this test's subnet index, once claimed
HOSTS_N=-1

skip() { echo "SKIP: $*"; exit 77; }

# hosts_require TOOL...: skip unless root, namespaces work, and each TOOL
# is on PATH.
hosts_require() {
  [ "$(id -u)" = 0 ] || skip "needs root (network namespaces, veth, tc); CI runs it as root"
  local t
  for t in ip nsenter unshare "$@"; do
    command -v "$t" >/dev/null || skip "needs '$t' (see .ci/run for the Debian packages)"
  done
  unshare --net --uts --mount true 2>/dev/null || skip "cannot create namespaces here (a container without CAP_SYS_ADMIN?)"
  ip link add pdprobe$$ type veth peer name pdprobe$$p 2>/dev/null || skip "cannot create veth links here"
  ip link del pdprobe$$ 2>/dev/null
}

# names of subnet X's objects
_ns() { echo "pd${1}h${2}"; }
_veth() { echo "pdv${1}_${2}"; }
_br() { echo "pdbr${1}"; }

# _teardown X N: remove what hosts_up made for subnet X (any N up to 9).
_teardown() {
  local x=$1 k pid ns
  for k in $(seq 0 9); do
    ns=$(_ns "$x" "$k")
    [ -e "/run/netns/$ns" ] || continue
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
  done
  for k in $(seq 0 9); do
    ns=$(_ns "$x" "$k")
    if [ -e "/run/netns/$ns" ]; then
      for _ in 1 2 3 4 5 6 7 8 9 10; do   # killed processes leave asynchronously
        [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break
        sleep 0.1
      done
      ip netns del "$ns" 2>/dev/null
    fi
    ip link del "$(_veth "$x" "$k")" 2>/dev/null
  done
  ip link del "$(_br "$x")" 2>/dev/null
  ip route del unreachable "10.231.$x.0/24" metric 4000 2>/dev/null
  rm -rf "$HOSTS_CLAIMS/$x"
  return 0
}

# Claim a free subnet; first remove what dead tests left behind.
_claim() {
  mkdir -p "$HOSTS_CLAIMS"
  local d x pid
  for d in "$HOSTS_CLAIMS"/*; do
    [ -d "$d" ] || continue
    pid=$(cat "$d/pid" 2>/dev/null)
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then _teardown "$(basename "$d")"; fi
  done
  for x in $(seq 100 199); do
    if mkdir "$HOSTS_CLAIMS/$x" 2>/dev/null; then
      echo $$ >"$HOSTS_CLAIMS/$x/pid"
      HX=$x
      return 0
    fi
  done
  fail "no free test subnet under $HOSTS_CLAIMS"
}

hosts_down() {
  [ -n "$HX" ] || return 0
  [ -n "$(type -t hosts_before_down)" ] && hosts_before_down
  _teardown "$HX"
  HX=""
}

# addr K: host K's address
addr() { echo "10.231.$HX.$((10 + $1))"; }
SUBNET() { echo "10.231.$HX.0/24"; }

# hosts_up N: hosts h0..hN (see the top of this file).
hosts_up() {
  local n=$1 k ns
  _claim
  trap 'hosts_down; cleanup' EXIT
  trap 'exit 1' INT TERM HUP
  HOSTS_N=$n
  HOSTS_DIR=$TMP/hosts
  mkdir -p "$HOSTS_DIR"
  ip route add unreachable "10.231.$HX.0/24" metric 4000 || fail "cannot add the guard route"
  ip link add "$(_br "$HX")" type bridge || fail "cannot create a bridge"
  ip link set "$(_br "$HX")" up
  : >"$HOSTS_DIR/etc_hosts"
  echo "127.0.0.1 localhost" >>"$HOSTS_DIR/etc_hosts"
  for k in $(seq 0 "$n"); do
    ns=$(_ns "$HX" "$k")
    ip netns add "$ns" || fail "cannot create namespace $ns"
    ip link add "$(_veth "$HX" "$k")" type veth peer name eth0 netns "$ns" || fail "veth $k"
    ip link set "$(_veth "$HX" "$k")" master "$(_br "$HX")" up
    ip -n "$ns" addr add "$(addr "$k")/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    mkdir -p "$HOSTS_DIR/h$k/shm" "$HOSTS_DIR/h$k/tmp"
    echo "$(addr "$k") h$k" >>"$HOSTS_DIR/etc_hosts"
  done
  # the guard: no namespace may have a default route
  for k in $(seq 0 "$n"); do
    ip -n "$(_ns "$HX" "$k")" route show default | grep -q . && fail "h$k has a default route"
  done
  export PD_HOSTS_NS_PREFIX="pd${HX}h" PD_HOSTS_DIR=$HOSTS_DIR
}

# on_host K CMD...: run CMD as a process of host K (foreground).
on_host() {
  local k=$1; shift
  "$HOSTS_LIB/rsh" "h$k" "$(printf '%q ' "$@")"
}

# link_down K / link_up K: host K's cable (carrier lost on the bridge side)
link_down() { ip link set "$(_veth "$HX" "$1")" down; }
link_up() { ip link set "$(_veth "$HX" "$1")" up; }
# shape K RATE: token-bucket rate limit on host K's link, both directions
shape() {
  tc qdisc replace dev "$(_veth "$HX" "$1")" root tbf rate "$2" burst 256kb latency 20ms &&
    ip netns exec "$(_ns "$HX" "$1")" tc qdisc replace dev eth0 root tbf rate "$2" burst 256kb latency 20ms
}
# loss K PERMILLE: drop that share of the packets host K receives
# (iptables inside K's namespace: the root firewall is never touched)
loss() {
  ip netns exec "$(_ns "$HX" "$1")" iptables -A INPUT -i eth0 -m statistic \
    --mode random --probability "$(awk "BEGIN{print $2/1000}")" -j DROP
}
