#!/usr/bin/env bash
# transports: tcp shm
# A worker killed with SIGKILL in async mode (mid-stream: it pushes in a
# loop) leaves the server serving the others: two toy workers then finish
# with exact results.
source "$(dirname "$0")/lib.sh"
start_coordinator 2 3
start_servers 2
mkfifo "$TMP/spin"
PARAMD_COORDINATOR=$COORD PARAMD_RANK=2 "$BUILD/tests/tool_worker" spin >"$TMP/spin" 2>"$TMP/spin.err" &
SPIN=$!; PIDS+=($SPIN)
read -r -t 20 line <"$TMP/spin" || fail "spinning worker did not start: $(cat "$TMP/spin.err")"
[ "$line" = spinning ] || fail "unexpected: $line"
kill -KILL $SPIN
wait $SPIN 2>/dev/null
pass "worker 2 killed while pushing"
for r in 0 1; do
  PARAMD_COORDINATOR=$COORD PARAMD_RANK=$r "$BUILD/examples/toy" --sleep-ms 0 >"$TMP/toy.$r" 2>&1 &
  TOY[$r]=$!
done
wait ${TOY[0]} || fail "toy 0: $(cat "$TMP/toy.0")"
wait ${TOY[1]} || fail "toy 1: $(cat "$TMP/toy.1")"
expect_line "$TMP/toy.0" "final params \(async, mean\):( 200.0){10}$"
pass "the other workers finished with exact results"
wait "$COORD_PID"; wait "${SERVER_PIDS[@]}"
expect_line "$TMP/coordinator.log" "worker 2 disconnected without saying goodbye"
pass "the coordinator noticed and the cluster ended"
