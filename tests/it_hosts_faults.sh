#!/usr/bin/env bash
# Late, slow and vanishing hosts (tests/hosts/), each process started by
# hand on its host as `paramd launch --rank R --world 5`, meeting at
# --coordinator h1:7070 (a fixed port is safe: the namespaces are ours):
#   - servers and workers started before the coordinator keep trying it
#     (they say so) and the run completes, exact, once it comes;
#   - a coordinator that never comes: the server gives up at its
#     --connect-timeout-ms with an error naming the address and how long
#     it tried;
#   - links shaped by tbf (50 Mbit/s on both server hosts) and 0.2 % of
#     the packets into one of them dropped (iptables inside its
#     namespace): 4 MB sync pushes and pulls still give exact results;
#   - a server's host cut off mid-run (its link down): both workers fail,
#     after about their peer timeout (PARAMD_PEER_TIMEOUT_MS=2000), with an
#     error naming the server, its address and its host; nothing hangs.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/hosts/hosts.sh"
hosts_require tc
hosts_up 3
C=h1:7070

# rank R HOST LOG [launch options] -- PROGRAM...: rank R of 5 on HOST, in
# the background (its PID in LAST)
rank() {
  local r=$1 h=$2 log=$3; shift 3
  on_host "$h" timeout 60 "$PARAMD" launch --rank "$r" --world 5 --servers 2 \
    --coordinator "$C" "$@" >"$log" 2>&1 &
  LAST=$!; PIDS+=("$LAST")
}
# wait_line FILE REGEX: until FILE has such a line (the process says so)
wait_line() {
  local i
  for ((i = 0; i < 300; i++)); do grep -Eq -- "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  cat "$1" >&2; fail "no line '$2' in $1 within 15 s"
}
# wait_ok PID LOG WHAT: the process exited 0
wait_ok() { wait "$1" || { cat "$2"; fail "$3 exited non-zero"; }; }

# 1. Everyone but the coordinator first.  The secret file is there
# already, as an operator copies it to every host before a start (rank 0
# finds it and keeps it).
(umask 077; head -c 32 /dev/urandom | base64 >"$PARAMD_SECRET_FILE")
export PARAMD_LOG=debug
# (The workers are library clients, which log no debug lines: they start
# first, and the servers' lines say that the coordinator was still away.)
rank 3 1 "$TMP/late.w0" -- "$BUILD/examples/toy" --consistency sync --sleep-ms 0; W0=$LAST
rank 4 2 "$TMP/late.w1" -- "$BUILD/examples/toy" --consistency sync --sleep-ms 0; W1=$LAST
rank 1 2 "$TMP/late.s0" -- x; S0=$LAST
rank 2 3 "$TMP/late.s1" -- x; S1=$LAST
for f in late.s0 late.s1; do
  wait_line "$TMP/$f" "$C is not reachable yet \(Connection refused\); retrying"
done
rank 0 1 "$TMP/late.coord" -- x; CO=$LAST
for p in "$S0 late.s0" "$S1 late.s1" "$W0 late.w0" "$W1 late.w1" "$CO late.coord"; do
  set -- $p; wait_ok "$1" "$TMP/$2" "$2"
done
unset PARAMD_LOG
expect_line "$TMP/late.w0" "^final params \(sync, mean\):( 100\.0){10}\$"
pass "started before the coordinator: they retried until it came; toy exact"

# 2. No coordinator at all.
rank 1 2 "$TMP/none.s0" --connect-timeout-ms 1500 -- x
wait "$LAST" && fail "a server with no coordinator exited 0"
expect_line "$TMP/none.s0" "cannot connect to $C: Connection refused \(tried [0-9]+ times in 1\.[0-9] s: is it running, on that address, and is the port open\?\)"
pass "no coordinator: the server gives up at its deadline, saying where and how long"
PARAMD_SECRET_FILE=$TMP/never-made rank 1 2 "$TMP/nosecret.s0" --connect-timeout-ms 1500 -- x
wait "$LAST" && fail "a server without its secret file exited 0"
expect_line "$TMP/nosecret.s0" "the secret file $TMP/never-made did not appear within 1\.5 s \(--connect-timeout-ms\): rank 0 creates it"
pass "no secret file: the server waits for it until its deadline, then says where it looked"

# 3. Shaped links and loss.
shape 2 50mbit || fail "tc tbf on h2"
shape 3 50mbit || fail "tc tbf on h3"
if command -v iptables >/dev/null; then
  loss 2 2 || fail "iptables loss on h2"; lossy="0.2 % loss into h2"
else
  lossy="no iptables here: no loss"
fi
rank 0 1 "$TMP/shaped.coord" -- x; CO=$LAST
rank 1 2 "$TMP/shaped.s0" -- x; S0=$LAST
rank 2 3 "$TMP/shaped.s1" -- x; S1=$LAST
rank 3 1 "$TMP/shaped.w0" -- "$BUILD/tests/tool_worker" ramp 1000000 sync; W0=$LAST
rank 4 1 "$TMP/shaped.w1" -- "$BUILD/tests/tool_worker" ramp 1000000 sync; W1=$LAST
for p in "$W0 shaped.w0" "$W1 shaped.w1" "$CO shaped.coord" "$S0 shaped.s0" "$S1 shaped.s1"; do
  set -- $p; wait_ok "$1" "$TMP/$2" "$2"
done
pass "tbf 50 Mbit/s on both server hosts, $lossy: 4 MB sync ramp exact"
tc qdisc del dev "$(_veth "$HX" 2)" root; tc qdisc del dev "$(_veth "$HX" 3)" root

# 4. A server's host cut off mid-run.
export PARAMD_PEER_TIMEOUT_MS=2000
rank 0 1 "$TMP/cut.coord" -- x
rank 1 2 "$TMP/cut.s0" -- x
rank 2 3 "$TMP/cut.s1" -- x
rank 3 1 "$TMP/cut.w0" -- "$BUILD/tests/tool_worker" spin; W0=$LAST
rank 4 2 "$TMP/cut.w1" -- "$BUILD/tests/tool_worker" spin; W1=$LAST
wait_line "$TMP/cut.w0" "^spinning"
wait_line "$TMP/cut.w1" "^spinning"
t0=$(date +%s.%N)
link_down 3
wait "$W0" && fail "worker 0 went on without a server"
wait "$W1" && fail "worker 1 went on without a server"
t1=$(date +%s.%N)
for w in w0 w1; do
  expect_line "$TMP/cut.$w" "server [01] \(10\.231\.$HX\.13:[0-9]+ on host h3\): .*(timed out|stopped answering)"
done
pass "h3 cut off: both workers failed after $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s (peer timeout 2 s), naming server, address and host h3"
echo "  worker 0 said: $(grep -m1 -E 'on host h3' "$TMP/cut.w0")"
