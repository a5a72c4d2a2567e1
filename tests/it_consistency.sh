#!/usr/bin/env bash
# transports: tcp shm
# Bounded staleness, backup workers, and sync training that survives a dead
# worker, on real processes:
#   - ssp:s lets a worker pull s clocks ahead and no more (from the servers'
#     own record of served pulls), s = 0, 1, 3;
#   - sync with backup=1 drops exactly the late pushes, and the values are
#     the mean of the kept ones;
#   - a worker killed with SIGKILL mid-run: the others finish every step
#     with exact values (clocks after the death average the survivors);
#   - a worker stopped with SIGSTOP is timed out by its missing heartbeats
#     and removed; the others finish.
source "$(dirname "$0")/lib.sh"
TW=$BUILD/tests/tool_worker
for s in 0 1 3; do
  "$PARAMD" local --servers 2 --workers 2 -- "$TW" ssp $s >"$TMP/ssp.$s" 2>&1 \
    || { cat "$TMP/ssp.$s"; fail "ssp:$s"; }
  expect_line "$TMP/ssp.$s" "ssp ok: s=$s, pulls served at most $s clocks ahead"
  pass "ssp:$s: pulls at most $s clocks ahead, and one exactly $s"
done
"$PARAMD" local --servers 2 --workers 3 -- "$TW" backup 6 >"$TMP/backup" 2>&1 \
  || { cat "$TMP/backup"; fail "backup"; }
expect_line "$TMP/backup" "backup ok: 6 late pushes dropped on each of 2 servers"
pass "backup=1: late pushes dropped and counted, values = mean of the kept"

# a worker dies (SIGKILL) or hangs (SIGSTOP) at clock 4 of 12
for sig in KILL STOP; do
  rm -f "$TMP"/*.log
  start_coordinator 2 3 --heartbeat-timeout-ms 1500
  start_servers 2
  mkfifo "$TMP/w2.$sig"
  PARAMD_COORDINATOR=$COORD PARAMD_RANK=2 "$TW" steps 12 4 >"$TMP/w2.$sig" 2>&1 &
  W2=$!; PIDS+=($W2)
  for r in 0 1; do
    PARAMD_COORDINATOR=$COORD PARAMD_RANK=$r "$TW" steps 12 4 >"$TMP/w$r.$sig" 2>&1 &
    WP[$r]=$!
  done
  exec 6<>"$TMP/w2.$sig" # read-write: the open cannot block if worker 2 never starts
  read -r -t 30 line <&6 || fail "worker 2 did not reach clock 4"
  exec 6<&-
  [ "$line" = paused ] || fail "worker 2: $line"
  kill -$sig $W2
  wait ${WP[0]} || fail "worker 0 after SIG$sig of worker 2: $(cat "$TMP/w0.$sig")"
  wait ${WP[1]} || fail "worker 1 after SIG$sig of worker 2: $(cat "$TMP/w1.$sig")"
  expect_line "$TMP/w0.$sig" "steps ok: 12 steps"
  wait "$COORD_PID"; wait "${SERVER_PIDS[@]}"
  if [ $sig = KILL ]; then
    expect_line "$TMP/coordinator.log" "worker 2 disconnected without saying goodbye at clock [0-9]+"
  else
    expect_line "$TMP/coordinator.log" "worker 2 sent no heartbeat for .* at clock [0-9]+"
    kill -KILL $W2
  fi
  expect_line "$TMP/server.0.log" "worker 2 removed: table 1 goes on at clock 4 without it"
  pass "SIG$sig of worker 2 at clock 4: the others finished 12 steps exactly"
done

# a worker that arrived at a barrier and then died no longer counts there:
# the barrier still waits for the live workers that have not arrived
rm -f "$TMP"/*.log
PARAMD_LOG=debug start_coordinator 1 3 --heartbeat-timeout-ms 1500
start_servers 1
PARAMD_COORDINATOR=$COORD PARAMD_RANK=2 "$TW" barrier >"$TMP/b2" 2>&1 &
B2=$!; PIDS+=($B2)
wait_line "$TMP/coordinator.log" "worker 2 arrived at barrier 0 \(1 of 3\)"
kill -KILL $B2
# (its request connection waits in the barrier: noticed when its heartbeat
# connection closes, at worst by its silence)
wait_line "$TMP/coordinator.log" "worker 2 (disconnected without saying goodbye|sent no heartbeat)"
PARAMD_COORDINATOR=$COORD PARAMD_RANK=0 "$TW" barrier >"$TMP/b0" 2>&1 &
B0=$!; PIDS+=($B0)
wait_line "$TMP/coordinator.log" "worker 0 arrived at barrier 0 \("
expect_line "$TMP/coordinator.log" "worker 0 arrived at barrier 0 \(1 of 2\)"
PARAMD_COORDINATOR=$COORD PARAMD_RANK=1 "$TW" barrier >"$TMP/b1" 2>&1 \
  || fail "worker 1's barrier: $(cat "$TMP/b1")"
wait $B0 || fail "worker 0's barrier: $(cat "$TMP/b0")"
expect_line "$TMP/b0" "^released$"
expect_line "$TMP/b1" "^released$"
pass "a worker that died at a barrier is not counted: the barrier waited for the live ones"
