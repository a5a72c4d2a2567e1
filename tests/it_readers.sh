#!/usr/bin/env bash
# transports: tcp shm
# Who reads a link's replies (src/client/reader.c;
# tests/tool_readers.c says what each step checks):
#   own      blocking calls are read by their caller with no receiver
#            wake-up; async pulls and pushes of 32 MiB complete while nobody
#            waits; 4 threads on one link get exact values
#   multi    requests across 2 servers are read by their caller, link after
#            link; large ones too, with the receiver threads
#   handoff  a caller reading the link hands the role to a follower, which
#            hands it to the receiver thread for an async pull behind it
#   kill     the server is killed while a caller reads and another follows:
#            both, and a request queued behind them, fail naming the server
#   close    paramd_close returns with a large pull in flight
source "$(dirname "$0")/lib.sh"
TOOL=$BUILD/tests/tool_readers

"$PARAMD" local --servers 1 --workers 1 -- timeout 120 "$TOOL" own >"$TMP/own" 2>&1 \
  || { cat "$TMP/own"; fail "tool_readers own"; }
expect_line "$TMP/own" "\[worker 0\] own ok"
pass "own: $(grep -o 'blocking: .*' "$TMP/own"); $(grep -o '[0-9]* threads x .*' "$TMP/own")"

"$PARAMD" local --servers 2 --workers 1 -- timeout 120 "$TOOL" multi >"$TMP/multi" 2>&1 \
  || { cat "$TMP/multi"; fail "tool_readers multi"; }
expect_line "$TMP/multi" "\[worker 0\] multi ok"
pass "multi: $(grep -o 'blocking across .*' "$TMP/multi")"

start_coordinator 1 2
start_servers 1
PARAMD_COORDINATOR=$COORD timeout 60 "$TOOL" handoff >"$TMP/handoff" 2>&1 \
  || { cat "$TMP/handoff"; fail "tool_readers handoff"; }
expect_line "$TMP/handoff" "^handoff ok"
pass "handoff: caller to caller to receiver thread, in order"

start_coordinator 1 2
start_servers 1
mkfifo "$TMP/kill"
PARAMD_COORDINATOR=$COORD timeout 60 "$TOOL" kill >"$TMP/kill" 2>"$TMP/kill.err" &
KILLER=$!; PIDS+=($KILLER)
exec 4<"$TMP/kill"
read -r -t 60 line <&4 || fail "tool_readers kill did not start reading: $(cat "$TMP/kill.err")"
[ "$line" = reading ] || fail "unexpected: $line"
kill -KILL "${SERVER_PIDS[0]}"
wait "${SERVER_PIDS[0]}" 2>/dev/null
cat <&4 >"$TMP/kill.out"
exec 4<&-
wait $KILLER || fail "tool_readers kill exited non-zero: $(cat "$TMP/kill.out" "$TMP/kill.err")"
expect_line "$TMP/kill.out" "^kill ok: .*server 0"
pass "kill: $(grep -o 'failed: .*' "$TMP/kill.out")"

"$PARAMD" local --servers 1 --workers 1 -- timeout 60 "$TOOL" close >"$TMP/close" 2>&1 \
  || { cat "$TMP/close"; fail "tool_readers close"; }
expect_line "$TMP/close" "\[worker 0\] close ok"
pass "close with a pull in flight returns"
