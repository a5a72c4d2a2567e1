#!/usr/bin/env bash
# Hang diagnosis (docs/operations.md, "Waits"): a sync cluster where one
# worker never starts, and one where a worker is stopped with SIGSTOP.
# The process that holds the wait (server: a pull's clock; coordinator: a
# barrier) logs one line naming the worker and the clock within
# PD_WAIT_LOG_FIRST_MS (5 s; the test allows 60), the waiting worker logs
# its own, every line carries an RFC 3339 time, the role and the level,
# and `paramd status --json` shows the same wait and the workers the test
# started.  With a deadline (op_timeout_ms) the same waits end with
# PARAMD_ETIMEDOUT carrying that line, and the worker goes on; without one
# they wait.  A bad PARAMD_LOG is a warning that lists the accepted values.
source "$(dirname "$0")/lib.sh"
STAMP='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z'

# ---- a worker that never starts: the pull of clock 1 waits for clock 0
start_coordinator 1 2 --heartbeat-timeout-ms 120000
start_servers 1
PARAMD_COORDINATOR=$COORD PARAMD_RANK=0 "$BUILD/tests/tool_worker" steps 5 -1 \
  >"$TMP/w0.out" 2>"$TMP/w0.err" &
W0=$!; PIDS+=($W0)
wait_line "$TMP/server.0.log" "table 's' clock 0: waiting for worker 1 \(no push yet; no connection\)"
expect_line "$TMP/server.0.log" "$STAMP server 0: warning: table 's' clock 0: waiting for worker 1"
pass "the server names the worker that never started and the clock"
wait_line "$TMP/w0.err" "worker 0: a request on table 's' at clock 1 to server 0 has waited [0-9]+ s"
pass "the waiting worker says what it waits for and where to look"
"$PARAMD" status --coordinator "$COORD" --json >"$TMP/st1.json" || fail "status: $(cat "$TMP/st1.json")"
jq -e '.cluster.servers == 1 and .cluster.workers == 2 and (.workers | length) == 2
       and .workers[0].rank == 0 and .workers[0].state == "live"
       and .workers[1].rank == 1 and .workers[1].state == "new"
       and (.servers | length) == 1 and .servers[0].connected
       and .tables[0].name == "s" and .tables[0].consistency == "sync" and .tables[0].n == 100
       and .tables[0].clock == 0 and .tables[0].slowest_worker == 1
       and (.waits | length) == 1 and .waits[0].where == "server 0" and .waits[0].kind == "pull"
       and .waits[0].table == "s" and .waits[0].clock == 0 and .waits[0].worker == 1
       and .waits[0].last_clock == null and .waits[0].connection == "none"
       and (.waits[0].text | test("waiting for worker 1"))' "$TMP/st1.json" >/dev/null ||
  fail "status --json does not match the cluster: $(cat "$TMP/st1.json")"
"$PARAMD" status --coordinator "$COORD" >"$TMP/st1.txt" || fail "status text"
expect_line "$TMP/st1.txt" "^  server 0: table 's' clock 0: waiting for worker 1 \(no push yet; no connection\)"
pass "paramd status shows the cluster and the wait"
PARAMD_COORDINATOR=$COORD PARAMD_RANK=1 "$BUILD/tests/tool_worker" steps 5 -1 >"$TMP/w1.out" 2>&1
wait $W0 || fail "worker 0: $(cat "$TMP/w0.err")"
expect_line "$TMP/w0.out" "^steps ok"
pass "once the worker starts, the cluster goes on"
wait "$COORD_PID"

# ---- a barrier waiting for a worker that never registered
rm -f "$TMP/coordinator.log" "$TMP/server.0.log"
start_coordinator 1 2 --heartbeat-timeout-ms 120000
start_servers 1
PARAMD_COORDINATOR=$COORD PARAMD_RANK=0 "$BUILD/tests/tool_worker" steps 0 -1 \
  >"$TMP/b0.out" 2>"$TMP/b0.err" &
PIDS+=($!)
wait_line "$TMP/coordinator.log" "$STAMP coordinator: warning: barrier 0: waiting for worker 1 \(never registered\)"
"$PARAMD" status --coordinator "$COORD" --json >"$TMP/st2.json" || fail "status"
jq -e '.cluster.barrier_arrived == 1 and .workers[0].at_barrier
       and (.waits | length) == 1 and .waits[0].where == "coordinator"
       and .waits[0].kind == "barrier" and .waits[0].worker == 1' "$TMP/st2.json" >/dev/null ||
  fail "status --json: $(cat "$TMP/st2.json")"
pass "the coordinator names whom a barrier waits for; status shows it"
kill -KILL "$COORD_PID" "${SERVER_PIDS[@]}" 2>/dev/null

# ---- a worker stopped with SIGSTOP before its push of clock 3
rm -f "$TMP/coordinator.log" "$TMP/server.0.log"
start_coordinator 1 2 --heartbeat-timeout-ms 120000
start_servers 1
mkfifo "$TMP/p1"
PARAMD_COORDINATOR=$COORD PARAMD_RANK=0 "$BUILD/tests/tool_worker" steps 10 3 \
  >"$TMP/s0.out" 2>"$TMP/s0.err" &
PIDS+=($!)
PARAMD_COORDINATOR=$COORD PARAMD_RANK=1 "$BUILD/tests/tool_worker" steps 10 3 \
  >"$TMP/p1" 2>"$TMP/s1.err" &
S1=$!; PIDS+=($S1)
read -r -t 30 line <"$TMP/p1" || fail "worker 1 did not pause: $(cat "$TMP/s1.err")"
[ "$line" = paused ] || fail "unexpected: $line"
kill -STOP $S1
wait_line "$TMP/server.0.log" "table 's' clock 3: waiting for worker 1 \(last push at clock 2, [0-9.]+ s ago; connection alive\)"
pass "the server names the stopped worker, its last push and its live connection"
"$PARAMD" status --coordinator "$COORD" --json >"$TMP/st3.json" || fail "status"
jq -e '[.workers[].state] == ["live", "live"]
       and (.waits | length) == 1 and .waits[0].worker == 1 and .waits[0].clock == 3
       and .waits[0].last_clock == 2 and .waits[0].connection == "alive"
       and .tables[0].slowest_worker == 1 and .tables[0].slowest_clock == 2' "$TMP/st3.json" >/dev/null ||
  fail "status --json: $(cat "$TMP/st3.json")"
pass "status --json shows the stopped worker's wait"
kill -CONT $S1
kill -KILL $S1

# ---- deadlines (op_timeout_ms): a pull and a barrier held for a stopped
# worker end with PARAMD_ETIMEDOUT and the wait's own line; the client
# goes on (retries, and the run's values are exact); without a deadline
# the same pull waits until the worker is resumed.  Worker 0 pulls 10000
# floats in 4 KiB chunks, so its pull is ten frames to the one server.
for mode in deadline nodeadline; do
  rm -f "$TMP/coordinator.log" "$TMP/server.0.log"
  start_coordinator 1 2 --heartbeat-timeout-ms 120000
  start_servers 1
  opts="chunk_bytes=4096"
  [ $mode = deadline ] && opts="$opts op_timeout_ms=1500"
  PARAMD_COORDINATOR=$COORD PARAMD_RANK=0 TOOL_OPTIONS="$opts" \
    "$BUILD/tests/tool_worker" deadline 10000 6 3 >"$TMP/d0.out" 2>"$TMP/d0.err" &
  D0=$!; PIDS+=($D0)
  PARAMD_COORDINATOR=$COORD PARAMD_RANK=1 "$BUILD/tests/tool_worker" deadline 10000 6 3 \
    >"$TMP/d1.out" 2>"$TMP/d1.err" &
  D1=$!; PIDS+=($D1)
  wait_line "$TMP/d1.out" "^paused"
  if [ $mode = deadline ]; then
    wait_line "$TMP/d0.out" "^retrying"
    expect_line "$TMP/d0.out" "^pull timed out after [0-9]+ ms: server 0: table 'd' clock 3: waiting for worker 1 \(last push at clock 2, [0-9.]+ s ago; connection alive\); the pull gave up after 1500 ms \(op_timeout_ms\)"
    ms=$(sed -nE 's/^pull timed out after ([0-9]+) ms.*/\1/p' "$TMP/d0.out" | head -1)
    [ "$ms" -ge 1500 ] || fail "the pull gave up after $ms ms, before its deadline"
    pass "a pull held for a stopped worker fails with PARAMD_ETIMEDOUT naming it and the clock"
    expect_line "$TMP/d0.out" "^barrier timed out after [0-9]+ ms: coordinator [^ ]+: barrier 0: waiting for worker 1 \(at clock [0-9]+, last heard [0-9.]+ s ago\); the barrier gave up after 1500 ms \(op_timeout_ms\)"
    ms=$(sed -nE 's/^barrier timed out after ([0-9]+) ms.*/\1/p' "$TMP/d0.out" | head -1)
    [ "$ms" -ge 1500 ] || fail "the barrier gave up after $ms ms, before its deadline"
    pass "so does a barrier, naming the missing worker"
  else
    # the server says the pull waits, which is past 1500 ms: it still waits
    wait_line "$TMP/server.0.log" "table 'd' clock 3: waiting for worker 1 \(last push at clock 2"
    kill -0 $D0 2>/dev/null || fail "worker 0 ended: $(cat "$TMP/d0.err")"
  fi
  kill -CONT $D1
  wait $D0 || fail "worker 0 ($mode): $(cat "$TMP/d0.err")"
  wait $D1 || fail "worker 1 ($mode): $(cat "$TMP/d1.err")"
  expect_line "$TMP/d0.out" "^deadline ok: rank 0, 6 steps"
  expect_line "$TMP/d1.out" "^deadline ok: rank 1, 6 steps"
  if [ $mode = deadline ]; then
    pass "after the timeouts the client goes on: retried, the run's values are exact"
  else
    grep -q "^pull timed out" "$TMP/d0.out" && fail "a pull timed out without a deadline: $(cat "$TMP/d0.out")"
    pass "without op_timeout_ms the same pull waits until the worker resumes"
  fi
  wait "$COORD_PID"
done

# ---- PARAMD_LOG
PARAMD_LOG=verbose "$PARAMD" version >"$TMP/v.out" 2>"$TMP/v.err"
expect_line "$TMP/v.err" "$STAMP paramd: warning: PARAMD_LOG='verbose' is not a log level: use error, warning, info or debug"
pass "a bad PARAMD_LOG is a warning listing the accepted values"
