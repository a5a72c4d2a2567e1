#!/usr/bin/env bash
# The coordinator dies and is not taken back (docs/durability.md, "When the
# coordinator dies"; tests/it_coord_takeover.sh takes it back):
#  - a sync toy on 2 servers, checkpointed every few clocks, whose
#    coordinator has no rejoin window (--rejoin-s 0), has its
#    coordinator SIGKILLed while it runs: each server says "lost the
#    coordinator" and exits 1, each worker's next call fails naming a
#    server, nothing is left running, and the last complete checkpoint is
#    intact;
#  - a new coordinator and servers started with --restore from it take the
#    run back: the workers start at the checkpoint's clock and every value
#    ends exactly at that clock + the clocks run after it.
# transports: tcp shm
source "$(dirname "$0")/lib.sh"
TOY=$BUILD/examples/toy
cd "$TMP"

# gone PID WHAT: PID exits within 30 s (tail --pid follows it; no polling
# of ours) and its status is not 0
gone() {
  timeout 30 tail --pid="$1" -f /dev/null || fail "$2 still runs 30 s after the coordinator died"
  wait "$1" && fail "$2 exited 0 after losing the coordinator"
  return 0
}

start_coordinator 2 2 --checkpoint-dir "$TMP/root" --checkpoint-every-clocks 20 --rejoin-s 0
start_servers 2
TOY_PIDS=()
for r in 0 1; do
  PARAMD_COORDINATOR=$COORD PARAMD_RANK=$r "$TOY" --consistency sync --iters 1000000 \
    --sleep-ms 1 >"$TMP/toy.$r.out" 2>&1 &
  TOY_PIDS+=($!); PIDS+=($!)
done
# until two checkpoints are complete (an event: the coordinator's line)
wait_line "$TMP/coordinator.log" "checkpoint 2 at clock [0-9]+: $TMP/root/ckpt-000002"
kill -KILL "$COORD_PID"
wait "$COORD_PID" 2>/dev/null
for k in 0 1; do gone "${SERVER_PIDS[$k]}" "server $k"; done
for r in 0 1; do gone "${TOY_PIDS[$r]}" "worker $r"; done
for k in 0 1; do
  expect_line "$TMP/server.$k.log" "error: lost the coordinator: ($COORD closed the connection|read from $COORD: Connection reset by peer)"
done
for r in 0 1; do
  expect_line "$TMP/toy.$r.out" "^toy: paramd_[a-z_]+\(.*\): server [01] \(127\.0\.0\.1:[0-9]+"
done
L=$(cat "$TMP/root/LATEST")
[ -f "$TMP/root/$L/MANIFEST" ] || fail "LATEST names $L, which has no MANIFEST"
C=$(sed -nE "s|.*checkpoint [0-9]+ at clock ([0-9]+): $TMP/root/$L .*|\1|p" "$TMP/coordinator.log")
[ -n "$C" ] && [ "$C" -gt 0 ] || fail "no clock for $L in the coordinator's log"
pass "coordinator SIGKILLed: both servers said so and exited 1, both workers failed naming a server; $L (clock $C) intact"

# Take the run back from the checkpoint.
start_coordinator 2 2 --restore "$TMP/root"
SERVER_PIDS=()
for k in 0 1; do
  "$PARAMD" server --coordinator "$COORD" --restore "$TMP/root" >>"$TMP/server.r$k.log" 2>&1 &
  SERVER_PIDS+=($!); PIDS+=($!)
done
TOY_PIDS=()
for r in 0 1; do
  PARAMD_COORDINATOR=$COORD PARAMD_RANK=$r "$TOY" --consistency sync --sleep-ms 0 \
    >"$TMP/toy.r$r.out" 2>&1 &
  TOY_PIDS+=($!); PIDS+=($!)
done
for p in "${TOY_PIDS[@]}"; do wait "$p" || { cat "$TMP"/toy.r*.out; fail "a restored worker failed"; }; done
line=$(grep "final params" "$TMP/toy.r0.out")
echo "$line" | awk -v v=$((C + 100)) '{ for (i = NF - 9; i <= NF; i++) if ($i + 0 != v + 0) exit 1 }' \
  || fail "final params: '$line', expected all $((C + 100)) (clock $C + 100)"
for p in "$COORD_PID" "${SERVER_PIDS[@]}"; do
  wait "$p" || fail "the restored cluster did not end cleanly (pid $p)"
done
pass "a new coordinator and servers restored from $L: every value $((C + 100)), clock $C + 100"
