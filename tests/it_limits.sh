#!/usr/bin/env bash
# Limits and deadlines (docs/limits.md), against live servers and
# coordinators on loopback (hostile peers: tests/tool_flood.c):
#   - a peer that says nothing, and one that sends half a HELLO header,
#     are dropped at the handshake deadline (server and coordinator);
#   - a peer that sends a frame one byte at a time is dropped at the frame
#     deadline, before the frame is whole;
#   - a connection beyond --max-connections is refused with PARAMD_ELIMIT
#     and a message naming the limit;
#   - 2,000 idle connections (1,000 at the coordinator, 1,000 at the
#     server) cost no thread each, and real workers still train;
#   - with file descriptors exhausted (ulimit -n 48) the coordinator's and
#     the server's accept loops do not spin: one line when it starts, the
#     cluster recovers once the descriptors free up and a run is correct.
# No decision here waits on a clock: every wait is for an event, bounded
# by a generous safety timeout.
source "$(dirname "$0")/lib.sh"
FLOOD=$BUILD/tests/tool_flood
DL="--handshake-timeout-ms 1000 --frame-timeout-ms 1500"

# ---- deadlines ------------------------------------------------------------
start_coordinator 1 2 $DL
"$PARAMD" server --coordinator "$COORD" $DL >>"$TMP/server.0.log" 2>&1 &
SERVER_PIDS=($!); PIDS+=($!)
# The server's address, once it registered (the map waits for it).
SRV=$("$FLOOD" addr "$COORD")
[ -n "$SRV" ] || fail "no server address: $(cat "$TMP/stats" "$TMP/server.0.log" 2>/dev/null)"
for who in "$COORD" "$SRV"; do
  "$FLOOD" silent "$who" >"$TMP/f.log" 2>&1 || fail "silent peer at $who: $(cat "$TMP/f.log")"
  "$FLOOD" half "$who" >"$TMP/f.log" 2>&1 || fail "half HELLO at $who: $(cat "$TMP/f.log")"
  "$FLOOD" trickle "$who" 100 >"$TMP/f.log" 2>&1 || fail "trickle at $who: $(cat "$TMP/f.log")"
  cat "$TMP/f.log"
done
pass "idle, half-sent and trickling peers dropped by their deadlines"
expect_line "$TMP/coordinator.log" "sent nothing within the deadline: dropped"
expect_line "$TMP/coordinator.log" "did not finish within the connection's deadline"
expect_line "$TMP/coordinator.log" "frame from .* not complete within 1500 ms"
expect_line "$TMP/server.0.log" "sent nothing within the deadline: dropped"
expect_line "$TMP/server.0.log" "frame from .* not complete within 1500 ms"
pass "each drop logged with its reason"

# ---- 2,000 idle connections while real workers train --------------------
mkfifo "$TMP/hold1" "$TMP/hold2"
"$FLOOD" idle "$COORD" 1000 <"$TMP/hold1" >"$TMP/idle1.log" 2>&1 &
F1=$!; PIDS+=($F1)
"$FLOOD" idle "$SRV" 1000 <"$TMP/hold2" >"$TMP/idle2.log" 2>&1 &
F2=$!; PIDS+=($F2)
exec 7>"$TMP/hold1" 8>"$TMP/hold2"
for _ in $(seq 600); do
  grep -q open "$TMP/idle1.log" && grep -q open "$TMP/idle2.log" && break
  sleep 0.1
done
expect_line "$TMP/idle1.log" "idle 1000 open"
expect_line "$TMP/idle2.log" "idle 1000 open"
for r in 0 1; do
  PARAMD_COORDINATOR=$COORD PARAMD_RANK=$r "$BUILD/examples/toy" --sleep-ms 0 >"$TMP/toy.$r" 2>&1 &
  TOY[$r]=$!
done
# While the 2,000 are held: threads of each process stay far below one
# per connection (pending handshakes are capped at 64, then evicted).
tc=$(awk '/^Threads:/{print $2}' "/proc/$COORD_PID/status")
ts=$(awk '/^Threads:/{print $2}' "/proc/${SERVER_PIDS[0]}/status")
echo "threads with 1000 idle connections each: coordinator $tc, server $ts"
[ "$tc" -lt 200 ] || fail "coordinator has $tc threads for 1000 idle connections"
[ "$ts" -lt 200 ] || fail "server has $ts threads for 1000 idle connections"
wait ${TOY[0]} || fail "toy 0 under the flood: $(cat "$TMP/toy.0")"
wait ${TOY[1]} || fail "toy 1 under the flood: $(cat "$TMP/toy.1")"
expect_line "$TMP/toy.0" "final params \(async, mean\):( 200.0){10}$"
exec 7>&- 8>&-
wait $F1 $F2
pass "2,000 idle connections: no thread each, the workers trained"
wait "$COORD_PID" || fail "coordinator exited non-zero: $(tail "$TMP/coordinator.log")"
wait "${SERVER_PIDS[0]}" || fail "server exited non-zero"
expect_line "$TMP/coordinator.log" "dropped before finishing the handshake"

# ---- --max-connections ----------------------------------------------------
start_coordinator 1 1 --max-connections 5
start_servers 1   # the 5th connection (MAP answers once it registered)
"$FLOOD" full "$COORD" 4 >"$TMP/full.log" 2>&1 || fail "max connections: $(cat "$TMP/full.log")"
cat "$TMP/full.log"
expect_line "$TMP/full.log" "refused: the coordinator has 5 connections, its limit \(--max-connections\)"
kill "$COORD_PID" "${SERVER_PIDS[0]}"; wait "$COORD_PID" "${SERVER_PIDS[0]}" 2>/dev/null
pass "a connection beyond --max-connections is refused, saying why"

# ---- tables: --max-tables, --max-table-mb ---------------------------------
start_coordinator 1 1 --max-tables 3
"$PARAMD" server --coordinator "$COORD" --max-table-mb 1 >>"$TMP/server.2.log" 2>&1 &
SERVER_PIDS=($!); PIDS+=($!)
"$FLOOD" tables "$COORD" >"$TMP/tables.log" 2>&1 || fail "table limits: $(cat "$TMP/tables.log")"
cat "$TMP/tables.log"
wait "$COORD_PID" || fail "coordinator exited non-zero: $(tail "$TMP/coordinator.log")"
wait "${SERVER_PIDS[0]}" || fail "server exited non-zero"
pass "tables past --max-table-mb and --max-tables are refused, saying why"

# ---- descriptors exhausted ------------------------------------------------
: >"$TMP/coordinator.log"
rm -f "$TMP/ready"; mkfifo "$TMP/ready"
(ulimit -n 48; exec "$PARAMD" coordinator --servers 1 --workers 2 --ready-fd 3 $DL \
   3>"$TMP/ready" >>"$TMP/coordinator.log" 2>&1) &
COORD_PID=$!; PIDS+=("$COORD_PID")
read -r -t 20 COORD <"$TMP/ready" || fail "coordinator did not start: $(cat "$TMP/coordinator.log")"
: >"$TMP/server.1.log"
(ulimit -n 48; exec "$PARAMD" server --coordinator "$COORD" $DL) >>"$TMP/server.1.log" 2>&1 &
SERVER_PIDS=($!); PIDS+=($!)
rm -f "$TMP/hold1"; mkfifo "$TMP/hold1"
"$FLOOD" idle "$COORD" 300 <"$TMP/hold1" >"$TMP/idle1.log" 2>&1 &
F1=$!; PIDS+=($F1)
exec 7>"$TMP/hold1"
for _ in $(seq 600); do grep -q open "$TMP/idle1.log" && break; sleep 0.1; done
for _ in $(seq 600); do
  grep -q "cannot accept connections" "$TMP/coordinator.log" && break; sleep 0.1
done
expect_line "$TMP/coordinator.log" "cannot accept connections: Too many open files \(descriptor limit 48"
exec 7>&-
wait $F1
# The flood is gone: the same cluster serves a correct run.
for r in 0 1; do
  PARAMD_COORDINATOR=$COORD PARAMD_RANK=$r "$BUILD/examples/toy" --sleep-ms 0 >"$TMP/toy.$r" 2>&1 &
  TOY[$r]=$!
done
wait ${TOY[0]} || fail "toy 0 after the flood: $(cat "$TMP/toy.0")"
wait ${TOY[1]} || fail "toy 1 after the flood: $(cat "$TMP/toy.1")"
expect_line "$TMP/toy.0" "final params \(async, mean\):( 200.0){10}$"
wait "$COORD_PID" || fail "coordinator exited non-zero: $(tail "$TMP/coordinator.log")"
expect_line "$TMP/coordinator.log" "accepting connections again, after [0-9]+ ms short of descriptors"
n=$(grep -c "cannot accept connections" "$TMP/coordinator.log")
lines=$(wc -l <"$TMP/coordinator.log")
echo "descriptor episodes logged: $n; coordinator log: $lines lines"
[ "$n" -le 3 ] || fail "$n lines about exhausted descriptors (one per episode expected)"
[ "$lines" -lt 400 ] || fail "coordinator wrote $lines log lines under the flood"
cat "$TMP/coordinator.log"
pass "descriptors exhausted: no spin, one logged refusal, recovered, a correct run"
