#!/usr/bin/env bash
# paramd local: a failing worker makes it exit non-zero and stop everything
# (with --keep-going the others finish without it, exit 3);
# SIGTERM and SIGINT stop everything; wrong arguments are rejected; and in
# no case is a process left behind.  Each run is in its own session, so
# "left behind" means: any process still in that session.
source "$(dirname "$0")/lib.sh"

# run_session OUT CMD...: run CMD as the leader of a new session; SID=pid
# (zombies do not count: a reparented child may wait for init to reap it)
in_session() { ps -s "$1" -o stat= 2>/dev/null | grep -qv '^Z'; }

# 1. worker 1 exits 3 while worker 0 waits forever
setsid "$PARAMD" local --servers 2 --workers 2 -- bash -c \
  'if [ "$PARAMD_RANK" = 1 ]; then exec "$0" fail; else exec "$0" pidfile "$1"; fi' \
  "$BUILD/tests/tool_worker" "$TMP" >"$TMP/fail.out" 2>&1 &
SID=$!
wait $SID; rc=$?
[ $rc = 1 ] || fail "paramd local exited $rc after a worker failed, expected 1"
expect_line "$TMP/fail.out" "worker 1 failed \(exit status 3\)"
if in_session $SID; then ps -s $SID; fail "processes left behind after a failed worker"; fi
pass "failed worker: exit 1, nothing left behind"

# 1b. --keep-going: worker 2 of 3 killed, or stopped until the coordinator
# removes it (its heartbeat timeout), at clock 4 of 12: the others finish,
# exactly (tool_worker steps checks the values), exit 3 naming it
for sig in KILL STOP; do
  mkfifo "$TMP/kg.$sig"
  setsid "$PARAMD" local --servers 2 --workers 3 --keep-going -- bash -c \
    'if [ "$PARAMD_RANK" = 2 ]; then echo $$ >"$1.pid"; exec "$0" steps 12 4 >"$1"; fi
     exec "$0" steps 12 4' "$BUILD/tests/tool_worker" "$TMP/kg.$sig" >"$TMP/kg.$sig.out" 2>&1 &
  SID=$!
  exec 6<>"$TMP/kg.$sig" # read-write: the open cannot block if worker 2 never starts
  read -r -t 30 line <&6 || fail "worker 2 did not reach clock 4: $(cat "$TMP/kg.$sig.out")"
  [ "$line" = paused ] || fail "worker 2: $line"
  kill -$sig "$(cat "$TMP/kg.$sig.pid")"
  wait $SID; rc=$?
  [ $rc = 3 ] || { cat "$TMP/kg.$sig.out"; fail "paramd local --keep-going exited $rc after SIG$sig of worker 2, expected 3"; }
  expect_line "$TMP/kg.$sig.out" "^\[worker 0\] steps ok: 12 steps"
  if [ $sig = KILL ]; then
    expect_line "$TMP/kg.$sig.out" "^paramd local: worker 2 failed \(killed by signal 9.*\); the others go on without it"
    expect_line "$TMP/kg.$sig.out" "^paramd local: worker 2 failed \(killed by signal 9.*\); the others finished"
  else
    expect_line "$TMP/kg.$sig.out" "^paramd local: worker 2 was removed by the coordinator \(no heartbeat\) and had not exited: stopping it"
  fi
  exec 6<&-
  if in_session $SID; then ps -s $SID; fail "processes left behind after --keep-going"; fi
  pass "--keep-going, SIG$sig of worker 2 at clock 4: the others finished 12 steps exactly, exit 3"
done

# 1c. --replace-workers: worker 1 killed at clock 4; worker 0 holds before
# clock 7 until the replacement (same rank, PARAMD_REPLACEMENT=1) joined,
# at clock 7 exactly; both finish with exact values (tool_worker elastic).
# The replacement connects only once worker 0 waits at 7 (rp.fifo.rep):
# else, on a loaded machine, it could join before worker 0 pushed clock 6.
mkfifo "$TMP/rp.fifo" "$TMP/rp.go" "$TMP/rp.fifo.rep"
setsid "$PARAMD" local --servers 2 --workers 2 --replace-workers 1 -- bash -c \
  'if [ "$PARAMD_RANK" = 1 ] && [ -z "$PARAMD_REPLACEMENT" ]; then
     echo $$ >"$1.pid"; exec "$0" elastic "rule=add consistency=sync aggregate=sum" 12 4 7 "$2" >"$1"
   fi
   [ -n "$PARAMD_REPLACEMENT" ] && read -r _ <"$1.rep"
   exec "$0" elastic "rule=add consistency=sync aggregate=sum" 12 4 7 "$2"' \
  "$BUILD/tests/tool_worker" "$TMP/rp.fifo" "$TMP/rp.go" >"$TMP/rp.out" 2>&1 &
SID=$!
exec 6<>"$TMP/rp.fifo"
read -r -t 30 line <&6 || fail "worker 1 did not start: $(cat "$TMP/rp.out")"
read -r -t 30 line <&6 || fail "worker 1 did not reach clock 4: $(cat "$TMP/rp.out")"
[ "$line" = paused ] || fail "worker 1: $line"
kill -KILL "$(cat "$TMP/rp.fifo.pid")"
wait_line "$TMP/rp.out" "^\[worker 0\] waiting at 7"
echo go >"$TMP/rp.fifo.rep"
wait_line "$TMP/rp.out" "worker 1 joined at clock 7"
exec 7<>"$TMP/rp.go"; echo go >&7
wait $SID; rc=$?
exec 6<&- 7<&-
[ $rc = 3 ] || { cat "$TMP/rp.out"; fail "paramd local --replace-workers exited $rc, expected 3"; }
expect_line "$TMP/rp.out" "^paramd local: worker 1 failed \(killed by signal 9.*\); starting a replacement \(0 more allowed\)"
expect_line "$TMP/rp.out" "^\[worker 1\] elastic ok: rank 1, clocks 7..11, value 9012"
expect_line "$TMP/rp.out" "^\[worker 0\] elastic ok: rank 0, clocks 0..11, value 9012"
expect_line "$TMP/rp.out" "^paramd local: worker 1 failed .*; a replacement finished in its place"
if in_session $SID; then ps -s $SID; fail "processes left behind after --replace-workers"; fi
"$PARAMD" local --replace-workers x -- true 2>"$TMP/rp.bad" && fail "--replace-workers x accepted"
expect_line "$TMP/rp.bad" "--replace-workers 'x' is not 0..1000"
pass "--replace-workers: worker 1 killed at clock 4, its replacement joined at clock 7, values exact, exit 3"

# 2. SIGTERM and SIGINT while workers run
for sig in TERM INT; do
  rm -f "$TMP"/worker.*.pid
  mkfifo "$TMP/out.$sig"
  setsid "$PARAMD" local --servers 2 --workers 2 -- "$BUILD/tests/tool_worker" pidfile "$TMP" \
     >"$TMP/out.$sig" 2>&1 &
  SID=$!
  # wait until both workers are up (they print "waiting")
  exec 5<"$TMP/out.$sig"   # stays open: paramd local can keep writing
  n=0
  while read -r -t 20 line <&5; do
    case $line in *waiting*) n=$((n+1)); [ $n = 2 ] && break;; esac
  done
  [ $n = 2 ] || fail "workers did not start"
  kill -$sig $SID
  cat <&5 >/dev/null &      # drain what it prints while stopping
  wait $SID; rc=$?
  exec 5<&-
  [ $rc -ge 128 ] || fail "paramd local exited $rc after SIG$sig"
  if in_session $SID; then ps -s $SID; fail "processes left behind after SIG$sig"; fi
  for f in "$TMP"/worker.*.pid; do
    ! kill -0 "$(cat "$f")" 2>/dev/null || fail "worker $(cat "$f") alive after SIG$sig"
  done
  pass "SIG$sig: exit $rc, nothing left behind"
done

# 3. SIGKILL of paramd local itself: the children die with it
mkfifo "$TMP/out.kill"
setsid "$PARAMD" local --servers 1 --workers 1 -- "$BUILD/tests/tool_worker" pidfile "$TMP" \
   >"$TMP/out.kill" 2>&1 &
SID=$!
exec 5<"$TMP/out.kill"
while read -r -t 20 line <&5; do case $line in *waiting*) break;; esac; done
kill -KILL $SID; wait $SID 2>/dev/null; exec 5<&-
# PR_SET_PDEATHSIG delivers SIGKILL to each child; wait for them to go
for i in $(seq 100); do in_session $SID || break; timeout 0.1 tail -f /dev/null; done
if in_session $SID; then ps -s $SID; fail "children survived SIGKILL of paramd local"; fi
pass "SIGKILL of paramd local: children gone"

# 4. wrong arguments
"$PARAMD" local --servers 0 -- true 2>"$TMP/e1" && fail "--servers 0 accepted"
expect_line "$TMP/e1" "--servers '0' is not"
"$PARAMD" local --servers 1 2>"$TMP/e2" && fail "missing program accepted"
expect_line "$TMP/e2" "no worker program"
"$PARAMD" local -- /nonexistent/program >"$TMP/e3" 2>&1 && fail "missing program ran"
expect_line "$TMP/e3" "cannot run /nonexistent/program"
"$PARAMD" coordinator --servers 1 2>"$TMP/e4" && fail "coordinator without --workers"
expect_line "$TMP/e4" "required"
"$PARAMD" server 2>"$TMP/e5" && fail "server without coordinator"
expect_line "$TMP/e5" "coordinator"
"$PARAMD" bogus 2>"$TMP/e6" && fail "unknown command accepted"
expect_line "$TMP/e6" "unknown command 'bogus'"
env -u PARAMD_COORDINATOR "$BUILD/examples/toy" 2>"$TMP/e7" && fail "toy without a cluster"
expect_line "$TMP/e7" "PARAMD_COORDINATOR"
pass "wrong arguments rejected with a message"

# 5. --apply-threads reaches every server (their STATS), bad values refused
cat >"$TMP/apply.sh" <<'SH'
#!/bin/sh
"$1" stats 2>&1 | grep "apply threads"
SH
chmod +x "$TMP/apply.sh"
"$PARAMD" local --servers 2 --apply-threads 3 -- "$TMP/apply.sh" "$PARAMD" >"$TMP/p1" 2>&1 \
  || fail "apply-threads probe failed: $(cat "$TMP/p1")"
[ "$(grep -c 'apply threads 3 ' "$TMP/p1")" = 2 ] || fail "apply threads not 3 on both servers: $(cat "$TMP/p1")"
"$PARAMD" local --apply-threads 1 -- "$TMP/apply.sh" "$PARAMD" >"$TMP/p2" 2>&1 \
  || fail "apply-threads probe failed: $(cat "$TMP/p2")"
expect_line "$TMP/p2" "apply threads 1 "
"$PARAMD" local --apply-threads 0 -- true 2>"$TMP/e9" && fail "--apply-threads 0 accepted"
expect_line "$TMP/e9" "--apply-threads '0' is not a number in 1..64"
PARAMD_APPLY_THREADS=x "$PARAMD" server --coordinator 127.0.0.1:1 2>"$TMP/e10" && fail "bad PARAMD_APPLY_THREADS accepted"
expect_line "$TMP/e10" "PARAMD_APPLY_THREADS 'x' is not a number"
pass "apply threads on every server, and bad values"
