#!/usr/bin/env bash
# The shared-memory transport between real processes:
#   - transport=shm and transport=tcp workers of one cluster are counted
#     on the connections they asked for (the server's own STATS);
#   - a worker killed with SIGKILL while pushing over shared memory leaves
#     no segment mapped in the server (it notices through the socket), and
#     the server goes on serving;
#   - transport=shm against a server started with --transport tcp, and a
#     bad transport name, fail with a message that says what to do;
#   - paramd local --transport shm runs the toy with exact results.
source "$(dirname "$0")/lib.sh"
start_coordinator 1 3
start_servers 1
SERVER=${SERVER_PIDS[0]}

# start_spinner RANK TRANSPORT: an async worker pushing in a loop
start_spinner() {
  mkfifo "$TMP/spin.$1"
  PARAMD_COORDINATOR=$COORD PARAMD_RANK=$1 PARAMD_TRANSPORT=$2 \
    "$BUILD/tests/tool_worker" spin >"$TMP/spin.$1" 2>"$TMP/spin.$1.err" &
  SPIN_PID=$!; PIDS+=($SPIN_PID)
  read -r -t 20 line <"$TMP/spin.$1" || fail "spinner $1 did not start: $(cat "$TMP/spin.$1.err")"
  [ "$line" = spinning ] || fail "spinner $1: unexpected '$line'"
  # keep the FIFO drained so the worker never blocks on stdout
  cat "$TMP/spin.$1" >/dev/null &
}
segments() { grep -c 'memfd:paramd-shm' "/proc/$SERVER/maps"; }

start_spinner 0 shm; SHM_PID=$SPIN_PID
start_spinner 1 tcp; TCP_PID=$SPIN_PID
"$PARAMD" stats --coordinator "$COORD" >"$TMP/stats1" 2>&1 || fail "stats: $(cat "$TMP/stats1")"
expect_line "$TMP/stats1" "worker connections tcp 1 shm 1"
[ "$(segments)" = 1 ] || fail "server maps $(segments) shared-memory segments, want 1"
pass "a shm and a tcp worker, each on the transport it asked for"

kill -KILL "$SHM_PID"
gone=0
for ((i = 0; i < 200; i++)); do   # the server polls a silent peer every 50 ms
  if [ "$(segments)" = 0 ]; then gone=1; break; fi
  sleep 0.05
done
[ $gone = 1 ] || fail "the killed worker's segment is still mapped in the server"
kill -0 "$SERVER" || fail "server died with the worker"
"$PARAMD" stats --coordinator "$COORD" >"$TMP/stats2" 2>&1 || fail "stats after kill: $(cat "$TMP/stats2")"
expect_line "$TMP/stats2" "worker connections tcp 1 shm 0"
pass "SIGKILL of a shm worker: segment released, server serving"
kill -KILL "$TCP_PID"

# A server that offers only TCP.
start_coordinator 1 1
"$PARAMD" server --coordinator "$COORD" --transport tcp >>"$TMP/server.tcp.log" 2>&1 &
PIDS+=($!)
PARAMD_COORDINATOR=$COORD PARAMD_RANK=0 PARAMD_TRANSPORT=shm \
  "$BUILD/tests/tool_worker" ramp 10 async >"$TMP/noshm" 2>&1 && fail "transport=shm against a TCP-only server succeeded"
expect_line "$TMP/noshm" "offers no shared-memory transport.*transport=auto"
PARAMD_COORDINATOR=$COORD PARAMD_RANK=0 PARAMD_TRANSPORT=carrier-pigeon \
  "$BUILD/tests/tool_worker" ramp 10 async >"$TMP/badtr" 2>&1 && fail "a bad transport name was accepted"
expect_line "$TMP/badtr" "transport 'carrier-pigeon' is not auto, tcp or shm"
"$PARAMD" server --coordinator "$COORD" --transport udp >"$TMP/badsrv" 2>&1 && fail "server --transport udp accepted"
expect_line "$TMP/badsrv" "--transport 'udp' is not auto or tcp"
pass "shm refused by a TCP-only server, bad transport names refused"

"$PARAMD" local --servers 2 --workers 2 --transport shm -- "$BUILD/examples/toy" \
    --consistency sync --sleep-ms 0 >"$TMP/toy" 2>&1 || { cat "$TMP/toy"; fail "toy over shm"; }
expect_line "$TMP/toy" "\[worker 0\] final params \(sync, mean\):( 100.0){10}\$"
"$PARAMD" local --transport bogus -- true >"$TMP/badlocal" 2>&1; [ $? = 2 ] || fail "paramd local --transport bogus did not exit 2"
expect_line "$TMP/badlocal" "--transport 'bogus' is not auto, tcp or shm"
pass "paramd local --transport shm: toy exact; bad --transport refused"
