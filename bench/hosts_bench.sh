#!/usr/bin/env bash
# bench/hosts_bench.sh - dense push+pull across simulated hosts, next to
# iperf3 over the same links in the same run (root; run by hand:
# `sudo bash bench/hosts_bench.sh build [BYTES] [SECONDS]`).
#
# Five simulated hosts (tests/hosts/hosts.sh: network namespaces on a
# bridge): the coordinator on h0, workers on h1 and h2, servers on h3 and
# h4, each process a `paramd launch --rank R --world 5`.  Each worker
# (bench/hosts_pushpull.c) pushes a BYTES table (16 MiB) and pulls it back
# for SECONDS (5), so half of every server's shard crosses each worker's
# link each way per round.  Two configurations:
#   shaped    every host's link limited to 1 Gbit/s each way (tbf);
#   unshaped  the bare bridge (veth pairs; CPU-bound on a small machine);
# and for each, first its ceiling: iperf3 from h1 to h3 (one TCP stream,
# SECONDS long) over the same links, then the same while h2 sends to h4
# (both workers' links at once, as paramd uses them).  A worker's figure
# counts both directions of its link over its time, so 100 % of a
# sequential push-then-pull would equal the one-way link rate: its ratio is
# taken over the one-way iperf3 figure.  Prints one line per figure.
# Benchmarks are programs: nothing here asserts a time.  Figures and their
# reading are in bench/README.md ("Across hosts").
set -u
BUILD=${1:?usage: bash bench/hosts_bench.sh BUILD_DIR [BYTES] [SECONDS]}
BYTES=${2:-16777216}
SECS=${3:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../tests/lib.sh" "$BUILD"
source "$HERE/../tests/hosts/hosts.sh"
hosts_require tc iperf3
hosts_up 4
echo "# hosts_bench: $(date -u '+%F %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), tree $(git -C "$HERE/.." rev-parse --short HEAD 2>/dev/null)"
echo "# $BYTES bytes per push and per pull, $SECS s per figure; coordinator h0, workers h1 h2, servers h3 h4"

# iperf3 servers on host K, port P (in the background, one test each);
# returns once it listens
iperf_server() {
  rm -f "$TMP/is.$2"
  on_host "$1" timeout $((SECS + 30)) iperf3 -s -1 --forceflush -B "$(addr "$1")" -p "$2" >"$TMP/is.$2" 2>&1 &
  local i
  for ((i = 0; i < 200; i++)); do grep -qs listening "$TMP/is.$2" && return 0; sleep 0.05; done
  fail "iperf3 server on h$1 did not start: $(cat "$TMP/is.$2")"
}
# iperf_client FROM TO PORT OUT: one stream for SECS, JSON into OUT
iperf_client() {
  on_host "$1" timeout $((SECS + 30)) iperf3 -c "$(addr "$2")" -p "$3" -t "$SECS" -J >"$4" 2>&1
}
# mbit OUT: the receiver's rate in a JSON result
mbit() {
  awk '/"sum_received"/{f=1} f && /"bits_per_second"/{gsub(/,/,""); printf "%.0f", $2/1e6; exit}' "$1"
}

# cluster: the 5 processes; prints the workers' lines
cluster() {
  local r h pids=() hostof=(0 3 4 1 2)
  for r in 0 1 2 3 4; do
    on_host "${hostof[$r]}" timeout $((SECS + 60)) "$PARAMD" launch --rank $r --world 5 \
      --servers 2 --coordinator h0:7070 -- "$BUILD/bench/hosts_pushpull" "$BYTES" "$SECS" \
      >"$TMP/c.$r" 2>&1 &
    pids+=($!)
  done
  for r in 0 1 2 3 4; do wait "${pids[$r]}" || { cat "$TMP/c.$r" >&2; fail "rank $r failed"; }; done
  grep -h '^pushpull\|^verified' "$TMP/c.3" "$TMP/c.4"
}

for cfg in shaped unshaped; do
  if [ $cfg = shaped ]; then for k in 0 1 2 3 4; do shape $k 1gbit || fail "tbf"; done; fi
  iperf_server 3 5201
  iperf_client 1 3 5201 "$TMP/i0"
  one=$(mbit "$TMP/i0")
  echo "config=$cfg iperf3 h1->h3 alone: ${one} Mbit/s"
  iperf_server 3 5202
  iperf_server 4 5203
  iperf_client 2 4 5203 "$TMP/i2" &
  c2=$!
  iperf_client 1 3 5202 "$TMP/i1"
  wait "$c2"
  echo "config=$cfg iperf3 h1->h3 and h2->h4 at once: $(mbit "$TMP/i1") $(mbit "$TMP/i2") Mbit/s"
  cluster | while read -r line; do
    case $line in
      pushpull*) set -- $line
        echo "config=$cfg paramd worker $3 push+pull $5 B x $7 in $9 s: ${11} Mbit/s over its link" \
             "= $(awk "BEGIN{printf \"%.0f\", 100 * ${11} / $one}") % of iperf3 alone";;
      *) echo "config=$cfg $line";;
    esac
  done
  if [ $cfg = shaped ]; then
    for k in 0 1 2 3 4; do
      tc qdisc del dev "$(_veth "$HX" $k)" root 2>/dev/null
      ip netns exec "$(_ns "$HX" $k)" tc qdisc del dev eth0 root 2>/dev/null
    done
  fi
done
