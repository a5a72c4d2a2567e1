#!/usr/bin/env bash
# A coordinator started again takes a running cluster back
# (docs/durability.md, "When the coordinator dies"):
#  - a sync toy on 2 servers and 2 workers has its coordinator SIGKILLed
#    while it trains: the servers say so and serve on, the workers train
#    to their last clock with no coordinator (the servers' applied clock
#    gets there), and wait at their final barrier;
#  - a coordinator started again on the same address with the same
#    options takes the cluster back from the servers' and workers'
#    rejoins: the barrier is released, every value ends exactly at the
#    number of clocks, and every process exits 0;
#  - a run whose coordinator dies while a worker waits at a barrier, and
#    comes back: the worker asks again, and the barrier is passed once
#    (two arrivals at the new coordinator) and ends exact;
#  - a coordinator started with other options refuses the servers'
#    rejoins, naming both; they exit 1;
#  - no coordinator comes back within --rejoin-s: the servers say so and
#    exit 1, the workers fail;
#  - paramd local --restarts 1 starts its SIGKILLed coordinator alone
#    again: the run ends exact, exit 3, saying so;
#  - a worker that dies while the coordinator is away is removed by the
#    new one at its heartbeat timeout, and the other finishes exact;
#  - a cluster whose workers had all left (kept by --persist) ends when a
#    coordinator started again without it takes it back;
#  - a server whose link to a coordinator that lives breaks (the fault
#    transport, at its 6th frame sent) reconnects to it, and the run ends
#    exact.
# Also: --rejoin-s, --listen-fd, local --restarts and --coordinator-fault
# refuse wrong values, naming them.
# transports: tcp shm
source "$(dirname "$0")/lib.sh"
TOY=$BUILD/examples/toy
cd "$TMP"

# clock_of URL: the toy table's applied clock on the server whose metrics
# are at URL (the server's own count: every worker's push of each clock
# went in), "" if it cannot be read
clock_of() {
  curl -fsS --max-time 5 "$1" 2>/dev/null |
    sed -nE 's/^paramd_table_clock\{[^}]*\} ([0-9]+)$/\1/p' | head -1
}
# clock_reaches URL N: block until that clock is at least N, or fail after
# 60 s (a scrape every tenth of a second: the condition is the server's)
clock_reaches() {
  local end=$((SECONDS + 60)) c
  until c=$(clock_of "$1"); [ -n "$c" ] && [ "$c" -ge "$2" ]; do
    [ $SECONDS -lt $end ] || fail "$1: the table's clock is '$c', never $2"
    sleep 0.1
  done
}
# metrics_urls: URLS, the servers' metrics addresses (from their logs)
metrics_urls() {
  URLS=()
  for k in 0 1; do
    wait_line "$TMP/server.$k.log" "metrics at http://"
    URLS+=("$(sed -nE 's|.*metrics at (http://[^ ]+/metrics).*|\1|p' "$TMP/server.$k.log" | head -1)")
  done
}
# servers_ok WHEN: every server exits 0 (else their logs, and fail)
servers_ok() {
  for p in "${SERVER_PIDS[@]}"; do
    wait "$p" || { cat "$TMP"/server.*.log "$TMP/coordinator.log" >&2; fail "a server did not end cleanly $1 (pid $p)"; }
  done
}
# exact FILE V: the toy's final params in FILE are all V
exact() {
  local line; line=$(grep "final params" "$1") || { cat "$1" >&2; fail "$1: no final params"; }
  echo "$line" | awk -v v="$2" '{ for (i = NF - 9; i <= NF; i++) if ($i + 0 != v + 0) exit 1 }' \
    || fail "$1: '$line', expected every value $2"
}

# start_toys OUT ITERS SLEEP_MS: 2 sync toys against $COORD (output
# OUT.RANK.out, pids TOY_PIDS)
start_toys() {
  TOY_PIDS=()
  for r in 0 1; do
    PARAMD_COORDINATOR=$COORD PARAMD_RANK=$r "$TOY" --consistency sync --iters "$2" \
      --sleep-ms "$3" >"$TMP/$1.$r.out" 2>&1 &
    TOY_PIDS+=($!); PIDS+=($!)
  done
}
# run_toys OUT ITERS SLEEP_MS [coordinator args]: a coordinator, 2 servers
# (metrics in URLS) and 2 sync toys (output OUT.RANK.out, pids TOY_PIDS);
# returns once the servers applied 5 clocks
run_toys() {
  local out=$1 iters=$2 ms=$3; shift 3
  rm -f "$TMP/coordinator.log" "$TMP"/server.*.log
  start_coordinator 2 2 "$@"
  ADDR=$COORD
  start_servers 2 --metrics 127.0.0.1:0
  metrics_urls
  start_toys "$out" "$iters" "$ms"
  clock_reaches "${URLS[0]}" 5
}

# --- 0. wrong arguments: refused, saying what is wrong ---
refused 2 "--rejoin-s '-1' is not 0\.\.86400 \(seconds\)" "$PARAMD" coordinator --servers 1 --workers 1 --rejoin-s -1
refused 2 "--listen-fd '1' is not a descriptor above 2" "$PARAMD" coordinator --servers 1 --workers 1 --listen-fd 1
refused 1 "descriptor 9 is not a listening TCP socket" "$PARAMD" coordinator --servers 1 --workers 1 --listen-fd 9 9<"$TMP/arg.out"
refused 2 "--restarts 'x' is not 0\.\.1000" "$PARAMD" local --restarts x -- "$TOY"
refused 2 "--coordinator-fault: fault spec 'bogus=1': unknown key 'bogus'" "$PARAMD" server --coordinator 127.0.0.1:9 --coordinator-fault bogus=1
pass "wrong --rejoin-s, --listen-fd (a number, a file), local --restarts and --coordinator-fault: refused, naming them"

ITERS=300
# --- 1. killed while training; the workers finish their clocks alone ---
run_toys toy $ITERS 2 --rejoin-s 60
kill -KILL "$COORD_PID"
wait "$COORD_PID" 2>/dev/null
C0=$(clock_of "${URLS[0]}")
for k in 0 1; do
  wait_line "$TMP/server.$k.log" "lost the coordinator: .*serving on, and reconnecting to $ADDR for up to 60 s"
done
for u in "${URLS[@]}"; do clock_reaches "$u" $ITERS; done
[ "$C0" -lt $ITERS ] || fail "the run was over ($C0 clocks) before the coordinator died"
for p in "${TOY_PIDS[@]}" "${SERVER_PIDS[@]}"; do
  kill -0 "$p" 2>/dev/null || fail "a process ended while the coordinator was away (pid $p)"
done
pass "coordinator SIGKILLed at clock $C0: both servers served on, the workers trained to clock $ITERS without it"

mv "$TMP/coordinator.log" "$TMP/coordinator.1.log"
start_coordinator 2 2 --listen "$ADDR" --rejoin-s 60
[ "$COORD" = "$ADDR" ] || fail "the new coordinator listens on $COORD, not $ADDR"
for p in "${TOY_PIDS[@]}"; do wait "$p" || { cat "$TMP"/toy.*.out; fail "a worker failed after the takeover"; }; done
exact "$TMP/toy.0.out" $ITERS   # (rank 0 prints them)
wait "$COORD_PID" || { cat "$TMP/coordinator.log" "$TMP"/server.*.log; fail "the new coordinator did not end cleanly"; }
servers_ok "after the takeover"
expect_line "$TMP/coordinator.log" "taking a running cluster back: server [01] rejoined"
expect_line "$TMP/coordinator.log" "took the cluster back: all 2 servers rejoined after [0-9.]+ s, 1 tables; 2 workers to rejoin, 0 gone before"
expect_line "$TMP/coordinator.log" "worker 0 rejoined at clock $ITERS"
expect_line "$TMP/coordinator.log" "worker 1 rejoined at clock $ITERS"
for k in 0 1; do expect_line "$TMP/server.$k.log" "rejoined the coordinator at $ADDR after [0-9.]+ s"; done
pass "a coordinator started again on $ADDR took the cluster back: the barrier released, every value $ITERS, every process exit 0"

# --- 2. killed while a worker waits at a barrier ---
# The toy's first call to the coordinator after opening its table is its
# final barrier (--iters 0).  Worker 0 arrives there and the coordinator
# dies; worker 1 starts once a coordinator is back on the address (a new
# worker needs one to connect).  Worker 0 asks the new coordinator again
# (its barrier's number, 0, says which), both pass it, once.
rm -f "$TMP/coordinator.log"
PARAMD_LOG=debug start_coordinator 2 2 --rejoin-s 60
ADDR=$COORD
start_servers 2
PARAMD_COORDINATOR=$COORD PARAMD_RANK=0 "$TOY" --consistency sync --iters 0 >"$TMP/b.0.out" 2>&1 &
B0=$!; PIDS+=($B0)
wait_line "$TMP/coordinator.log" "worker 0 arrived at barrier 0"
kill -KILL "$COORD_PID"
wait "$COORD_PID" 2>/dev/null
for k in 0 1; do wait_line "$TMP/server.$k.log" "lost the coordinator: .*serving on"; done
mv "$TMP/coordinator.log" "$TMP/coordinator.2.log"
PARAMD_LOG=debug start_coordinator 2 2 --listen "$ADDR" --rejoin-s 60
PARAMD_COORDINATOR=$COORD PARAMD_RANK=1 "$TOY" --consistency sync --iters 0 >"$TMP/b.1.out" 2>&1 &
B1=$!; PIDS+=($B1)
for p in $B0 $B1; do wait "$p" || { cat "$TMP"/b.*.out "$TMP/coordinator.log"; fail "a worker failed across a takeover at a barrier"; }; done
exact "$TMP/b.0.out" 0
wait "$COORD_PID" || fail "the coordinator after the barrier did not end cleanly"
servers_ok ""
expect_line "$TMP/coordinator.log" "worker 0 rejoined at clock 0"
[ "$(grep -c "arrived at barrier 0" "$TMP/coordinator.log")" = 2 ] ||
  fail "barrier 0 should have had 2 arrivals at the new coordinator: $(grep "arrived at barrier" "$TMP/coordinator.log")"
pass "coordinator lost while a worker waited at a barrier: the barrier passed once after the takeover"

# start_run REJOIN_S: toys that train long, their coordinator SIGKILLed
start_run() {
  run_toys g 100000 1 --rejoin-s "$1"
  kill -KILL "$COORD_PID"
  wait "$COORD_PID" 2>/dev/null
}
# ends PID WHAT: PID exits within 30 s, with a status other than 0
ends() {
  timeout 30 tail --pid="$1" -f /dev/null || fail "$2 still runs 30 s after the coordinator died"
  wait "$1" && fail "$2 exited 0"
  return 0
}

# --- 3. a coordinator started again with other options ---
start_run 60
mv "$TMP/coordinator.log" "$TMP/coordinator.3.log"
start_coordinator 3 2 --listen "$ADDR" --startup-timeout-ms 0
for p in "${SERVER_PIDS[@]}"; do ends "$p" "a server refused by the new coordinator"; done
for p in "${TOY_PIDS[@]}"; do ends "$p" "a worker whose servers stopped"; done
for k in 0 1; do
  expect_line "$TMP/server.$k.log" "the coordinator at $ADDR refused this server: server [01] belongs to a cluster of --servers 2 --workers 2 --max-workers 2, and this coordinator has --servers 3 --workers 2 --max-workers 2"
done
kill "$COORD_PID"; wait "$COORD_PID" 2>/dev/null
pass "a coordinator started with --servers 3 refused the servers of a 2-server cluster, naming both; they exited 1"

# --- 4. no coordinator comes back within --rejoin-s ---
start_run 1
for p in "${SERVER_PIDS[@]}"; do ends "$p" "a server with no coordinator"; done
for p in "${TOY_PIDS[@]}"; do ends "$p" "a worker with no coordinator"; done
for k in 0 1; do
  expect_line "$TMP/server.$k.log" "lost the coordinator: no coordinator took the cluster back at $ADDR within 1 s"
done
pass "no coordinator came back within --rejoin-s 1: both servers said so and exited 1, both workers failed"

# --- 5. paramd local --restarts: its coordinator alone is started again ---
# Killed as soon as the table is defined on the servers (while its creator
# may still be writing it, or the other worker waiting for it).
rm -f "$TMP/local.log"
PARAMD_LOG=debug setsid "$PARAMD" local --servers 2 --workers 2 --restarts 1 -- "$TOY" \
  --consistency sync --iters 300 --sleep-ms 5 >"$TMP/local.log" 2>&1 &
LOCAL=$!; PIDS+=($LOCAL)
wait_line "$TMP/local.log" "server [01]: debug: table 1: shard"
victim=$(session_child $LOCAL coordinator)
[ -n "$victim" ] || { cat "$TMP/local.log"; fail "no coordinator child to kill"; }
kill -KILL "$victim"
wait $LOCAL; rc=$?
[ $rc = 3 ] || { cat "$TMP/local.log"; fail "paramd local --restarts 1 exited $rc after its coordinator was killed, expected 3"; }
expect_line "$TMP/local.log" "^paramd local: the coordinator exited \(killed by signal 9.*\) while workers were running; starting it again on 127\.0\.0\.1:[0-9]+, where the servers and workers rejoin it \(0 more allowed\)"
expect_line "$TMP/local.log" "took the cluster back: all 2 servers rejoined"
expect_line "$TMP/local.log" "^paramd local: the coordinator exited \(killed by signal 9.*\); a coordinator started again took the running cluster back and the run finished"
exact "$TMP/local.log" 300
pass "paramd local --restarts 1: its coordinator SIGKILLed after the table was defined, started again alone, every value 300, exit 3"

# --- 6. a worker dies while the coordinator is away ---
# Nobody tells the servers (no coordinator), so their sync clocks wait for
# it; the coordinator started again finds it away, removes it at its
# heartbeat timeout, and tells the servers: worker 0 finishes (each
# clock's mean of the pushes that came is still 1).
run_toys d $ITERS 2 --rejoin-s 60 --heartbeat-timeout-ms 2000
kill -KILL "$COORD_PID" "${TOY_PIDS[1]}"
wait "$COORD_PID" "${TOY_PIDS[1]}" 2>/dev/null
for k in 0 1; do wait_line "$TMP/server.$k.log" "lost the coordinator: .*serving on"; done
mv "$TMP/coordinator.log" "$TMP/coordinator.6.log"
start_coordinator 2 2 --listen "$ADDR" --rejoin-s 60 --heartbeat-timeout-ms 2000
wait "${TOY_PIDS[0]}" || { cat "$TMP/d.0.out" "$TMP/coordinator.log"; fail "worker 0 failed after worker 1 died while the coordinator was away"; }
exact "$TMP/d.0.out" $ITERS
wait "$COORD_PID"; rc=$?
[ $rc = 3 ] || fail "the coordinator exited $rc, expected 3 (a worker died)"
expect_line "$TMP/coordinator.log" "took the cluster back: all 2 servers rejoined after [0-9.]+ s, 1 tables; 2 workers to rejoin, 0 gone before"
expect_line "$TMP/coordinator.log" "worker 1 did not come back to the coordinator that took the cluster back: no heartbeat for [0-9.]+ s at clock [0-9]+; removed from the cluster, the others go on"
servers_ok ""
pass "worker 1 died while the coordinator was away: the new one removed it at its heartbeat timeout, worker 0 finished exact"

# --- 7. every worker had left: the cluster taken back ends ---
# (--persist kept the first coordinator running after its workers left;
# the one started again without it finds no worker and ends the cluster)
rm -f "$TMP/coordinator.log" "$TMP"/server.*.log
start_coordinator 2 2 --rejoin-s 60 --persist
ADDR=$COORD
start_servers 2
start_toys e 20 0
for p in "${TOY_PIDS[@]}"; do wait "$p" || fail "a worker failed (pid $p)"; done
kill -KILL "$COORD_PID"; wait "$COORD_PID" 2>/dev/null
for k in 0 1; do wait_line "$TMP/server.$k.log" "lost the coordinator: .*serving on"; done
mv "$TMP/coordinator.log" "$TMP/coordinator.7.log"
start_coordinator 2 2 --listen "$ADDR" --rejoin-s 60
wait "$COORD_PID" || fail "the coordinator that found no worker did not end cleanly: $(cat "$TMP/coordinator.log")"
servers_ok ""
expect_line "$TMP/coordinator.log" "took the cluster back: all 2 servers rejoined after [0-9.]+ s, 1 tables; 0 workers to rejoin, 2 gone before"
pass "every worker had left before the coordinator died: the one started again ended the cluster, every process exit 0"

# --- 8. a server's link to a coordinator that lives breaks ---
# Its first connection to the coordinator fails at its 6th frame sent (the
# handshake's, REG_SERVER, then a heartbeat a second: about 3 s in, while
# the toys train); it serves on, reconnects, and the same coordinator takes
# it back: nothing is lost, every process exits 0.
rm -f "$TMP/coordinator.log" "$TMP"/server.*.log
start_coordinator 2 2 --rejoin-s 60
ADDR=$COORD
SERVER_PIDS=()
"$PARAMD" server --coordinator "$COORD" --coordinator-fault send_fail=6 >>"$TMP/server.0.log" 2>&1 &
SERVER_PIDS+=($!); PIDS+=($!)
"$PARAMD" server --coordinator "$COORD" >>"$TMP/server.1.log" 2>&1 &
SERVER_PIDS+=($!); PIDS+=($!)
start_toys f 3000 2
wait_line "$TMP/server.0.log" "rejoined the coordinator at $ADDR after [0-9.]+ s"
kill -0 "${TOY_PIDS[0]}" 2>/dev/null || fail "the toys ended before the server's link broke: make them longer"
for p in "${TOY_PIDS[@]}"; do wait "$p" || { cat "$TMP"/f.*.out; fail "a worker failed across the broken link"; }; done
exact "$TMP/f.0.out" 3000
wait "$COORD_PID" || { cat "$TMP/coordinator.log" >&2; fail "the coordinator did not end cleanly after a server reconnected"; }
servers_ok "after its link broke"
expect_line "$TMP/server.0.log" "lost the coordinator: .*serving on, and reconnecting to $ADDR"
expect_line "$TMP/coordinator.log" "error: server [01] disconnected"
expect_line "$TMP/coordinator.log" "server [01] reconnected from 127\.0\.0\.1:[0-9]+ after its connection broke"
pass "a server's link to the coordinator broke mid-run: it reconnected to the same coordinator, every value 3000, every process exit 0"
