#!/usr/bin/env bash
# transports: tcp shm
# Injected transport faults (src/net/fault.c) against a real cluster on
# loopback: no push is lost or applied twice, and every failure reaches the
# caller as an error that names the server.
#
# Each case is a fresh cluster (coordinator, 2 servers, 2 worker slots):
# tests/tool_fault's worker pushes and pulls a dense table through links
# with the client option fault=SPEC (or to servers started with --fault
# SPEC), then a clean client checks that every acknowledged push was
# applied exactly once and every failed one at most once.
#   short reads and writes (client, server, both)  -> every call succeeds,
#                                                      values exact
#   the K-th send or receive fails (client, server) -> every call after the
#       fault fails (none hangs, the process does not crash), the message
#       names the server, the server keeps serving a new client
#   both again with slots large enough that, over shared memory, pushes
#       and pulls go by reference into the worker's shared buffers
source "$(dirname "$0")/lib.sh"
TOOL=$BUILD/tests/tool_fault
P=30 B=4
N=0

# run_case NAME DEPTH CLIENT_OPTIONS EXPECT [SERVER_FAULT]
#   EXPECT: "clean" (no call may fail) or "fault" (some call must fail)
run_case() {
  local name=$1 depth=$2 opts=$3 expect=$4 sfault=${5:-}
  local dir=$TMP/$N.$name; N=$((N + 1))
  mkdir -p "$dir"
  start_coordinator 2 2
  local srv=() k
  for k in 0 1; do
    if [ -n "$sfault" ]; then
      "$PARAMD" server --coordinator "$COORD" --fault "$sfault" >"$dir/server.$k.log" 2>&1 &
    else
      "$PARAMD" server --coordinator "$COORD" >"$dir/server.$k.log" 2>&1 &
    fi
    srv+=($!); PIDS+=($!)
  done
  local rc=0 k
  PARAMD_COORDINATOR=$COORD PARAMD_RANK=0 timeout 60 "$TOOL" work $P $B "$depth" \
      "$dir/outcomes" "$opts" >"$dir/work.out" 2>&1 || rc=$?
  [ $rc = 124 ] && fail "$name: the faulty worker hung: $(cat "$dir/work.out")"
  [ $rc = 0 ] || fail "$name: the faulty worker exited $rc: $(cat "$dir/work.out")"
  if [ "$expect" = clean ]; then
    expect_line "$dir/work.out" "^calls: [0-9]+ ok, 0 failed$"
  else
    expect_line "$dir/work.out" "^calls: [0-9]+ ok, [1-9][0-9]* failed$"
    expect_line "$dir/work.out" "^first failure: .*server [01]"
  fi
  for k in 0 1; do
    kill -0 "${srv[$k]}" 2>/dev/null || fail "$name: server $k died: $(cat "$dir/server.$k.log")"
  done
  PARAMD_COORDINATOR=$COORD PARAMD_RANK=1 timeout 60 "$TOOL" check $P $B \
      "$dir/outcomes" >"$dir/check.out" 2>&1 || fail "$name: check: $(cat "$dir/check.out")"
  [ "$expect" = clean ] && expect_line "$dir/check.out" "^check: $P acknowledged applied once, 0 failed"
  wait "$COORD_PID" || fail "$name: coordinator exited non-zero: $(cat "$TMP/coordinator.log")"
  for k in 0 1; do
    wait "${srv[$k]}" || fail "$name: server $k exited non-zero: $(cat "$dir/server.$k.log")"
  done
  pass "$name: $(grep ^calls: "$dir/work.out"); $(cat "$dir/check.out")"
  LAST=$dir
}

# Short reads and writes: the results are exact.
run_case client-short    1 "fault=short=7,seed=5" clean
run_case client-short-d4 4 "fault=short=3" clean
run_case server-short    4 "" clean "short=7,seed=2"
run_case both-short      2 "fault=short=5,seed=9" clean "short=11"

# The K-th send or receive of each of the worker's links fails (the
# handshake takes a link's first two sends: HELLO and AUTH).
for k in 4 9 22; do
  run_case client-send-$k 1 "fault=send_fail=$k" fault
  run_case client-send-$k-d4 4 "fault=send_fail=$k" fault
done
for k in 60 150; do  # with short writes the K-th call falls inside a frame
  run_case client-send-$k-short 4 "fault=send_fail=$k,short=64" fault
done
for k in 7 14 35; do  # the handshake's replies take a link's first 4 receives
  run_case client-recv-$k 1 "fault=recv_fail=$k" fault
  run_case client-recv-$k-d3 3 "fault=recv_fail=$k" fault
done

# The server fails a receive or a send on the worker's connection: the
# worker gets errors, the server logs why and serves the checker (a new
# client whose few calls stay below K) and exits cleanly at the end.
run_case server-recv 2 "" fault "recv_fail=42"
cat "$LAST"/server.*.log >"$LAST/servers.log"
expect_line "$LAST/servers.log" "fault injection .*failing receive call 42"
expect_line "$LAST/servers.log" "connection from .*read from .*Input/output error"
run_case server-send 2 "" fault "send_fail=16"
cat "$LAST"/server.*.log >"$LAST/servers.log"
expect_line "$LAST/servers.log" "fault injection .*failing send call 16"

# Large slots: over shared memory each server's part of a push or pull
# (30 x 600 floats) goes by reference into the worker's shared buffer
# (paramd_alloc; PUSH_REGION / PULL_REGION): the same guarantees.
B=600
run_case region-client-short 2 "fault=short=9,seed=3" clean
for k in 5 10; do
  run_case region-client-send-$k 2 "fault=send_fail=$k" fault
  run_case region-client-recv-$((k + 1)) 2 "fault=recv_fail=$((k + 1))" fault
done
run_case region-server-recv 2 "" fault "recv_fail=27"
run_case region-server-send 2 "" fault "send_fail=10"
B=4

# Bad specs are refused up front, with the reason.
out=$(PARAMD_COORDINATOR=127.0.0.1:1 "$TOOL" work 1 1 1 "$TMP/x" "fault=short=0" 2>&1) && fail "bad client spec accepted"
grep -q "fault=: fault spec 'short=0': short=0 is not a number" <<<"$out" || fail "bad client spec: $out"
out=$("$PARAMD" server --coordinator 127.0.0.1:1 --fault nope=1 2>&1) && fail "bad server spec accepted"
grep -q "unknown key 'nope'" <<<"$out" || fail "bad server spec: $out"
pass "bad specs refused with the reason"
