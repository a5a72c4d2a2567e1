#!/usr/bin/env bash
# Elastic workers on real processes (2 servers):
#   - a sync (and an ssp:1) cluster of 2 workers runs; worker 1 is killed
#     at clock 4; worker 0 goes on alone and holds before clock 7; a new
#     worker joins, takes rank 1 at clock 7 exactly (the first clock nobody
#     pushed for), and both finish 12 clocks with exact values
#     (12 + 1000 * (4 + 12 - 7)); coordinator and servers log the join;
#   - while both slots are live, a third worker is refused with a clear
#     error (--max-workers);
#   - a table with elastic=no refuses a worker that joins a spare slot
#     (--max-workers 2 --workers 1), and its clocks never wait for it;
#   - async: the joiner's values are exact for the clock it was given.
# Synchronisation is by FIFOs only: the test reads what the workers print
# and releases worker 0 by writing to its FIFO.
source "$(dirname "$0")/lib.sh"
TW=$BUILD/tests/tool_worker

# next_line FD WANT WHAT: the next line a worker prints on FD is WANT
next_line() {
  read -r -t 30 line <&$1 || fail "$3 (no line)"
  [ "$line" = "$2" ] || fail "$3: '$line', expected '$2'"
}

# run_replace SPEC: kill worker 1 at clock 4, a new worker joins at clock 7
run_replace() {
  local spec=$1 tag=$2
  rm -f "$TMP"/*.log "$TMP"/*.fifo "$TMP/go"
  start_coordinator 2 2
  start_servers 2
  mkfifo "$TMP/w0.fifo" "$TMP/w1.fifo" "$TMP/j.fifo" "$TMP/go"
  PARAMD_COORDINATOR=$COORD PARAMD_RANK=0 "$TW" elastic "$spec" 12 4 7 "$TMP/go" \
    >"$TMP/w0.fifo" 2>"$TMP/w0.err" &
  W0=$!; PIDS+=($W0)
  PARAMD_COORDINATOR=$COORD PARAMD_RANK=1 "$TW" elastic "$spec" 12 4 7 "$TMP/go" \
    >"$TMP/w1.fifo" 2>"$TMP/w1.err" &
  W1=$!; PIDS+=($W1)
  exec 5<"$TMP/w0.fifo" 6<"$TMP/w1.fifo"
  next_line 5 "start at clock 0 as rank 0" "$tag: worker 0"
  next_line 6 "start at clock 0 as rank 1" "$tag: worker 1"
  next_line 6 paused "$tag: worker 1 at clock 4"
  kill -KILL $W1
  # worker 0 reaches clock 7 only once clocks 4..6 applied without worker 1
  next_line 5 "waiting at 7" "$tag: worker 0 at clock 7 ($(cat "$TMP/w0.err"))"
  # the replacement: no rank asked for
  PARAMD_COORDINATOR=$COORD "$TW" elastic "$spec" 12 4 7 "$TMP/go" \
    >"$TMP/j.fifo" 2>"$TMP/j.err" &
  J=$!; PIDS+=($J)
  exec 7<"$TMP/j.fifo"
  next_line 7 "start at clock 7 as rank 1" "$tag: the new worker"
  # both slots live: a third worker is refused
  if PARAMD_COORDINATOR=$COORD "$TW" elastic "$spec" 12 4 7 "$TMP/go" >"$TMP/x.out" 2>&1; then
    fail "$tag: a third worker joined a cluster of 2 slots"
  fi
  expect_line "$TMP/x.out" "all 2 worker slots are taken by live workers"
  echo go >"$TMP/go"
  wait $W0 || fail "$tag: worker 0: $(cat "$TMP/w0.err")"
  wait $J || fail "$tag: the new worker: $(cat "$TMP/j.err")"
  cat <&5 >"$TMP/w0.out"; cat <&7 >"$TMP/j.out"
  exec 5<&- 6<&- 7<&-
  expect_line "$TMP/j.out" "elastic ok: rank 1, clocks 7..11, value 9012"
  expect_line "$TMP/w0.out" "elastic ok: rank 0, clocks 0..11, value 9012"
  wait "$COORD_PID"; wait "${SERVER_PIDS[@]}"
  expect_line "$TMP/coordinator.log" "worker 1 joined at clock 7 \(died slot; 2 workers"
  for k in 0 1; do
    expect_line "$TMP/server.$k.log" "worker 1 joined: table 1 counts it from clock 7"
  done
  pass "$tag: worker 1 killed at clock 4, replaced at clock 7; 12 clocks, values exact; a third worker refused"
}
run_replace "rule=add consistency=sync aggregate=sum" sync
run_replace "rule=add consistency=ssp:1 aggregate=sum" ssp1

# elastic=no: a spare slot's worker is refused; the table never waits for it
rm -f "$TMP"/*.log "$TMP"/*.fifo "$TMP/go"
start_coordinator 2 1 --max-workers 2
start_servers 2
mkfifo "$TMP/w0.fifo" "$TMP/go"
SPEC="rule=add consistency=sync aggregate=sum elastic=no"
PARAMD_COORDINATOR=$COORD "$TW" elastic "$SPEC" 6 0 3 "$TMP/go" >"$TMP/w0.fifo" 2>"$TMP/w0.err" &
W0=$!; PIDS+=($W0)
exec 5<"$TMP/w0.fifo"
next_line 5 "start at clock 0 as rank 0" "elastic=no: worker 0"
next_line 5 "waiting at 3" "elastic=no: worker 0 at clock 3"
if PARAMD_COORDINATOR=$COORD "$TW" elastic "$SPEC" 6 0 3 "$TMP/go" >"$TMP/x.out" 2>&1; then
  fail "elastic=no: a joiner opened the table"
fi
expect_line "$TMP/x.out" "start at clock [0-9]+ as rank 1"
expect_line "$TMP/x.out" "table 'e' does not take workers that join a running cluster \(its spec has elastic=no\)"
echo go >"$TMP/go"
wait $W0 || fail "elastic=no: worker 0: $(cat "$TMP/w0.err")"
cat <&5 >"$TMP/w0.out"; exec 5<&-
expect_line "$TMP/w0.out" "elastic ok: rank 0, clocks 0..5, value 6$"
wait "$COORD_PID"; wait "${SERVER_PIDS[@]}"
pass "elastic=no: the joiner's TABLE_OPEN refused with a clear error; worker 0 finished alone"

# async: the joiner runs from the clock it was given; exact values
rm -f "$TMP"/*.log "$TMP"/*.fifo "$TMP/go"
start_coordinator 1 1 --max-workers 2
start_servers 1
mkfifo "$TMP/w0.fifo" "$TMP/go"
SPEC="rule=add consistency=async"
PARAMD_COORDINATOR=$COORD "$TW" elastic "$SPEC" 8 0 5 "$TMP/go" >"$TMP/w0.fifo" 2>"$TMP/w0.err" &
W0=$!; PIDS+=($W0)
exec 5<"$TMP/w0.fifo"
next_line 5 "start at clock 0 as rank 0" "async: worker 0"
next_line 5 "waiting at 5" "async: worker 0 at clock 5"
mkfifo "$TMP/j.fifo"
PARAMD_COORDINATOR=$COORD "$TW" elastic "$SPEC" 8 0 5 "$TMP/go" >"$TMP/j.fifo" 2>"$TMP/j.err" &
J=$!; PIDS+=($J)
exec 7<"$TMP/j.fifo"
read -r -t 30 line <&7 || fail "async: the joiner did not start: $(cat "$TMP/j.err")"
[[ $line == "start at clock "*" as rank 1" ]] || fail "async: the joiner: $line"
echo go >"$TMP/go"
wait $J || fail "async: the joiner: $(cat "$TMP/j.err")"
wait $W0 || fail "async: worker 0: $(cat "$TMP/w0.err")"
cat <&7 >"$TMP/j.out"; exec 5<&- 7<&-
expect_line "$TMP/j.out" "elastic ok: rank 1"
wait "$COORD_PID"; wait "${SERVER_PIDS[@]}"
pass "async: a spare slot joined; values exact for its start clock"
