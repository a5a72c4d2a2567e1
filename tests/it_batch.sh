#!/usr/bin/env bash
# transports: tcp shm
# Many small requests to one server coalesced into BATCH frames
# (tests/tool_batch.c): 2 workers, each with 2 threads issuing windows of
# 64 async 4 KiB pushes and small pulls to a sync, an async and a sparse
# table, on 1 and 2 servers, with coalescing on and off: exact values
# either way, a duplicate push inside a batch fails alone, and the
# servers' counters say batches happened only when on.  Then `paramd
# stats` shows the counters of a live cluster.
source "$(dirname "$0")/lib.sh"
for S in 1 2; do
  for cb in 16384 0; do
    out=$TMP/batch.$S.$cb
    "$PARAMD" local --servers $S --workers 2 -- "$BUILD/tests/tool_batch" $cb 2 >"$out" 2>&1 \
      || { cat "$out"; fail "tool_batch S=$S coalesce_bytes=$cb"; }
    expect_line "$out" "\[worker 0\] batch ok: rank 0 of 2, $S servers, coalesce_bytes=$cb"
    expect_line "$out" "\[worker 1\] batch ok: rank 1 of 2, $S servers"
    expect_line "$out" "a duplicate push in a window failed alone: server [0-9]: .*already pushed"
    if [ $cb = 0 ]; then
      expect_line "$out" "\[worker 0\] batches: 0 holding 0 requests"
    else
      expect_line "$out" "\[worker 0\] batches: [1-9][0-9]* holding [1-9][0-9]* requests"
    fi
    pass "S=$S coalesce_bytes=$cb: exact values, failures isolated, $(grep -o 'batches: .*' "$out")"
  done
done

# paramd stats on a live cluster shows the counters
start_coordinator 1 1 --persist
start_servers 1
PARAMD_COORDINATOR=$COORD PARAMD_RANK=0 "$BUILD/tests/tool_batch" 16384 1 >"$TMP/one" 2>&1 \
  || { cat "$TMP/one"; fail "tool_batch against a persistent cluster"; }
"$PARAMD" stats --coordinator "$COORD" >"$TMP/stats" 2>&1 || { cat "$TMP/stats"; fail "paramd stats"; }
expect_line "$TMP/stats" "^  worker connections tcp [0-9]+ shm [0-9]+ batches [1-9][0-9]* batched [1-9][0-9]*$"
expect_line "$TMP/stats" "^  batches [1-9][0-9]* batched [1-9][0-9]* \(all servers\)$"
pass "paramd stats shows the batch counters"

# paramd_flush sends the outbox without a wait (same persistent cluster)
PARAMD_COORDINATOR=$COORD PARAMD_RANK=0 timeout 60 "$BUILD/tests/tool_batch" flush >"$TMP/flush" 2>&1 \
  || { cat "$TMP/flush"; fail "tool_batch flush"; }
expect_line "$TMP/flush" "^batch flush ok: 64 pushes in [1-9][0-9]* batches before any wait"
pass "paramd_flush sends small async requests before any wait"

# the link breaks with batches in flight: a server that loses its fourth
# send (after the handshake's challenge and welcome and the TABLE_CREATE
# reply: the first BATCH's reply) and closes the connection
start_coordinator 1 1
"$PARAMD" server --coordinator "$COORD" --fault send_fail=4 >"$TMP/fserver.log" 2>&1 &
FSERVER=$!; PIDS+=($FSERVER)
PARAMD_COORDINATOR=$COORD PARAMD_RANK=0 timeout 60 "$BUILD/tests/tool_batch" lost >"$TMP/lost" 2>&1 \
  || { cat "$TMP/lost"; fail "tool_batch lost"; }
expect_line "$TMP/lost" "^batch lost ok: 20 requests failed with the link"
# the worker left, so the cluster ends by itself: cleanly, if the server
# survived its own fault
wait "$FSERVER" || fail "the server exited non-zero: $(cat "$TMP/fserver.log")"
pass "a broken link fails every request of its batches: $(grep ^first: "$TMP/lost")"
