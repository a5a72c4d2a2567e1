#!/usr/bin/env bash
# transports: tcp shm
# Random bytes, truncated, oversized and lying frames sent to a live server
# and coordinator (tests/tool_badframes.c checks each reply and that a
# table's values never change), and BATCH frames: inner requests that fail
# alone, malformed and fuzzed batches (over shared memory in the .shm
# run); then the same cluster still serves a correct run of the toy.
source "$(dirname "$0")/lib.sh"
# 3 workers: tool_badframes registers as rank 2 (its raw frames speak for
# it) and leaves before the toys take ranks 0 and 1
start_coordinator 1 3
start_servers 1
"$BUILD/tests/tool_badframes" "$COORD" >"$TMP/bf.log" 2>&1 || { cat "$TMP/bf.log"; fail "bad frames"; }
expect_line "$TMP/bf.log" "badframes ok"
pass "bad frames rejected, server unharmed"
for r in 0 1; do
  PARAMD_COORDINATOR=$COORD PARAMD_RANK=$r "$BUILD/examples/toy" --sleep-ms 0 >"$TMP/toy.$r" 2>&1 &
  TOY[$r]=$!
done
wait ${TOY[0]} || fail "toy 0: $(cat "$TMP/toy.0")"
wait ${TOY[1]} || fail "toy 1: $(cat "$TMP/toy.1")"
expect_line "$TMP/toy.0" "final params \(async, mean\):( 200.0){10}$"
pass "toy correct after the attack"
# the cluster ends by itself once both workers left
wait "$COORD_PID" || fail "coordinator exited non-zero"
wait "${SERVER_PIDS[0]}" || fail "server exited non-zero"
expect_line "$TMP/server.0.log" "closing connection .*bad magic"
expect_line "$TMP/server.0.log" "truncated frame"
expect_line "$TMP/server.0.log" "closing connection .*malformed BATCH of [0-9]+ bytes: inner frame 2 .* is a BATCH"
expect_line "$TMP/server.0.log" "closing connection .*malformed BATCH .*where inner frame [0-9]+ would start, are not a whole 40-byte header"
expect_line "$TMP/server.0.log" "closing connection .*malformed BATCH .*a BATCH with no inner frames"
pass "cluster shut down cleanly; reasons logged"
