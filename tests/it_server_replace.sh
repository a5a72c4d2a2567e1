#!/usr/bin/env bash
# A lost server replaced (docs/durability.md, "When a server dies: a
# replacement restores its shard"):
#  0. wrong --replace-s / --replace-servers: refused, naming them;
#  1. a sync toy on 2 servers and 2 workers (--replace-s 30, a checkpoint
#     every 20 clocks): server 1 is SIGKILLed after checkpoint 2 and a
#     replacement started by hand.  The coordinator and the new server
#     each say in one line that the shard was restored from a checkpoint
#     at clock C and goes on at clock A; the workers finish; every value
#     of server 0's shard is N (it kept its state) and every value of
#     server 1's is C + N - A (the checkpoint's, plus every clock from A
#     on); the survivor and the replacement exit 0, the coordinator 3;
#     1b. the same on a sparse table (tool_sparse toy): each row by the
#     server its key hashes to; 1c. servers 1 and 2 of 3 SIGKILLed at
#     once, two replacements, each shard going on at a clock of its own;
#  2. the same with an async toy (rule sgd lr 1 on ones: every push
#     applied adds 1): server 0's values are exactly 2N (every push of
#     both workers, none twice), server 1's at most 2N;
#  3. a server lost before any checkpoint: the coordinator says it cannot
#     be replaced and why, the workers fail naming it, and a server
#     started to replace it is refused with the same reason;
#  4. --replace-s 1 and no replacement: the workers fail, saying none
#     registered within 1 s;
#  5. paramd local --replace-servers 1: a SIGKILLed server is replaced by
#     itself, the run finishes with exit status 3 saying so; 5b. a server
#     whose own link to the coordinator breaks comes back into its slot;
#  6. paramd train --replace-servers: its buffers mapped into the new one.
# transports: tcp shm
source "$(dirname "$0")/lib.sh"
TOY=$BUILD/examples/toy
cd "$TMP"

# index_log K: the log of the server that is server K (its lines say so)
index_log() {
  grep -l "server $1: " "$TMP"/server.[0-9].log | head -1
}
# pid_of LOG: the pid of the server writing LOG
pid_of() {
  local k; for k in "${!SERVER_LOGS[@]}"; do
    [ "${SERVER_LOGS[$k]}" = "$1" ] && { echo "${SERVER_PIDS[$k]}"; return; }
  done
}
# start_toys MODE ITERS: 2 toys against $COORD (toy.RANK.out, TOY_PIDS);
# MODE sync or async (examples/toy), or sparse (tool_sparse toy: sync)
start_toys() {
  TOY_PIDS=()
  for r in 0 1; do
    if [ "$1" = sparse ]; then
      PARAMD_COORDINATOR=$COORD PARAMD_RANK=$r "$BUILD/tests/tool_sparse" toy "$2" \
        >"$TMP/toy.$r.out" 2>&1 &
    else
      PARAMD_COORDINATOR=$COORD PARAMD_RANK=$r "$TOY" --consistency "$1" --iters "$2" \
        --sleep-ms 1 >"$TMP/toy.$r.out" 2>&1 &
    fi
    TOY_PIDS+=($!); PIDS+=($!)
  done
}
# cluster MODE ITERS [coordinator args]: a coordinator checkpointing every
# 20 clocks (heartbeats every half second report them), 2 servers
# (SERVER_PIDS, logs server.K.log in SERVER_LOGS) and 2 toys
cluster() {
  local mode=$1 iters=$2; shift 2
  rm -rf "$TMP/coordinator.log" "$TMP"/server.*.log "$TMP"/toy.*.out "$TMP/root"
  start_coordinator "${NS:-2}" 2 --heartbeat-timeout-ms 2000 --checkpoint-dir "$TMP/root" "$@"
  start_servers "${NS:-2}"
  SERVER_LOGS=(); for ((k = 0; k < ${NS:-2}; k++)); do SERVER_LOGS+=("$TMP/server.$k.log"); done
  start_toys "$mode" "$iters"
}
# kill_server K: SIGKILL the server that is server K (once it has said so)
kill_server() {
  local log
  for _ in 1 2; do log=$(index_log "$1"); [ -n "$log" ] && break; done
  [ -n "$log" ] || { cat "$TMP"/server.*.log; fail "no server log says it is server $1"; }
  VICTIM=$(pid_of "$log")
  kill -KILL "$VICTIM"
  wait "$VICTIM" 2>/dev/null
}
# replacement: start a server against $COORD (server.R.log, REP_PID)
replacement() {
  "$PARAMD" server --coordinator "$COORD" >>"$TMP/server.R.log" 2>&1 &
  REP_PID=$!; PIDS+=($REP_PID)
}
# kill_and_replace MODE N: a cluster of MODE toys running N clocks, whose
# server 1 is SIGKILLed after checkpoint 2 and replaced by hand; returns
# once both workers finished (exit 0)
kill_and_replace() {
  cluster "$1" "$2" --checkpoint-every-clocks 20 --replace-s 30
  wait_line "$TMP/coordinator.log" "checkpoint 2 at clock [0-9]+"
  kill_server 1
  wait_line "$TMP/coordinator.log" "server 1 \(127\.0\.0\.1:[0-9]+\) lost; waiting up to 30 s \(--replace-s\) for a replacement \(paramd server --coordinator $COORD\) to restore its shard from $TMP/root/ckpt-[0-9]+ \(clock [0-9]+\)"
  replacement
  for r in 0 1; do
    wait "${TOY_PIDS[$r]}" || { cat "$TMP/toy.$r.out" "$TMP/coordinator.log" "$TMP"/server.R*.log; fail "$1 worker $r failed"; }
  done
}
# lost_clocks: C and A from the coordinator's line, checked against the
# replacement's own line
# (lost_clocks K: the same for server K of NS, whichever replacement took it)
lost_clocks() {
  local k=${1:-1}
  local re="server $k replaced by 127\\.0\\.0\\.1:[0-9]+ after [0-9.]+ s: its shard was restored from [^ ]+ \\(clock ([0-9]+)\\) and goes on at clock ([0-9]+), so it lost [0-9]+ clocks of updates"
  expect_line "$TMP/coordinator.log" "$re"
  C=$(sed -nE "s/.*$re.*/\1/p" "$TMP/coordinator.log")
  A=$(sed -nE "s/.*$re.*/\2/p" "$TMP/coordinator.log")
  [ "$A" -ge "$C" ] || fail "the shard goes on at clock $A, before its checkpoint's $C"
  cat "$TMP"/server.R*.log >"$TMP/replacements.log"
  expect_line "$TMP/replacements.log" "replacing lost server $k of ${NS:-2}: 1 tables restored from .* at clock $C; going on at clock $A \(this shard lost the updates of clocks $C\.\.$A; the other servers kept theirs\)"
}

# --- 0. wrong arguments ---
refused 2 "--replace-s '-1' is not 0\.\.86400 \(seconds\)" "$PARAMD" coordinator --servers 1 --workers 1 --replace-s -1
refused 2 "--replace-s 'x' is not 0\.\.86400 \(seconds\)" "$PARAMD" coordinator --servers 1 --workers 1 --replace-s x
refused 2 "--replace-servers 'x' is not 0\.\.1000" "$PARAMD" local --replace-servers x -- "$TOY"
refused 2 "--replace-servers needs --checkpoint-dir" "$PARAMD" local --replace-servers 1 -- "$TOY"
refused 2 "--replace-servers needs --checkpoint-dir" "$PARAMD" train --replace-servers 1
pass "wrong --replace-s and --replace-servers, and --replace-servers without checkpoints: refused, naming them"

# --- 1. sync: the lost shard goes on from its checkpoint, the other kept ---
N=4000
kill_and_replace sync $N
lost_clocks
mapfile -t V < <(values "$TMP/toy.0.out")
for i in 0 1 2 3 4; do [ "${V[$i]}" = $N ] || fail "server 0's element $i is ${V[$i]}, expected $N (it kept its state)"; done
for i in 5 6 7 8 9; do [ "${V[$i]}" = $((C + N - A)) ] || fail "server 1's element $i is ${V[$i]}, expected $((C + N - A)) (its checkpoint's $C, plus clocks $A..$N)"; done
for p in "$(pid_of "$(index_log 0)")" "$REP_PID"; do wait "$p" || fail "a server did not exit 0 (pid $p)"; done
wait "$COORD_PID"; rc=$?
[ $rc = 3 ] || fail "the coordinator exited $rc, expected 3 (a server was lost)"
expect_line "$TMP/coordinator.log" "1 server lost \(1 replaced, its shard restored from a checkpoint\): exit status 3"
pass "sync: server 1 SIGKILLed, replaced from its checkpoint at clock $C, going on at $A: server 0's values $N, server 1's $((C + N - A))"

# --- 1b. the same on a sparse table: rows by their key's server ---
N=3000
kill_and_replace sparse $N
lost_clocks
awk -v n=$N -v m=$((C + N - A)) '/^key / { want = $4 == 0 ? n : m; seen[$4]++
    if ($6 + 0 != want) { print "key " $2 " on server " $4 ": " $6 ", expected " want; bad = 1 } }
  END { exit bad || !seen[0] || !seen[1] }' "$TMP/toy.0.out" \
  || { cat "$TMP/toy.0.out"; fail "sparse: a row is not what its server kept or restored"; }
wait "$REP_PID" || fail "the sparse replacement did not exit 0"
pass "sparse: server 1 SIGKILLed, replaced from clock $C going on at $A: server 0's rows $N, server 1's $((C + N - A))"

# --- 1c. two of three servers lost at once, two replacements ---
# (each shard goes on at a clock of its own: the second slot's A counts
# a worker waiting for the first as possibly one clock further)
N=4000 NS=3
cluster sync $N --checkpoint-every-clocks 20 --replace-s 30
wait_line "$TMP/coordinator.log" "checkpoint 2 at clock [0-9]+"
L1=$(index_log 1) L2=$(index_log 2)
[ -n "$L1" ] && [ -n "$L2" ] || fail "no server logs say they are servers 1 and 2"
P1=$(pid_of "$L1") P2=$(pid_of "$L2")
kill -KILL "$P1" "$P2"; wait "$P1" "$P2" 2>/dev/null
replacement; R1=$REP_PID
"$PARAMD" server --coordinator "$COORD" >>"$TMP/server.R2.log" 2>&1 &
R2=$!; PIDS+=($R2)
for r in 0 1; do wait "${TOY_PIDS[$r]}" || { cat "$TMP/toy.$r.out" "$TMP/coordinator.log"; fail "worker $r failed with two servers replaced"; }; done
mapfile -t V < <(values "$TMP/toy.0.out")
for i in 0 1 2; do [ "${V[$i]}" = $N ] || fail "server 0's element $i is ${V[$i]}, expected $N"; done
lost_clocks 1; C1=$C A1=$A
lost_clocks 2; C2=$C A2=$A
for i in 3 4 5; do [ "${V[$i]}" = $((C1 + N - A1)) ] || fail "server 1's element $i is ${V[$i]}, expected $((C1 + N - A1))"; done
for i in 6 7 8 9; do [ "${V[$i]}" = $((C2 + N - A2)) ] || fail "server 2's element $i is ${V[$i]}, expected $((C2 + N - A2))"; done
for p in "$R1" "$R2"; do wait "$p" || fail "a replacement did not exit 0"; done
expect_line "$TMP/coordinator.log" "2 servers lost \(2 replaced, its shard restored from a checkpoint\): exit status 3"
NS=2
pass "servers 1 and 2 of 3 SIGKILLed at once and both replaced: server 0's values $N, server 1's $((C1 + N - A1)) (going on at $A1), server 2's $((C2 + N - A2)) (at $A2)"

# --- 2. async: no push applied twice on the survivor ---
N=3000
kill_and_replace async $N
expect_line "$TMP/coordinator.log" "server 1 replaced by"
mapfile -t V < <(values "$TMP/toy.0.out")
for i in 0 1 2 3 4; do [ "${V[$i]}" = $((2 * N)) ] || fail "async: server 0's element $i is ${V[$i]}, expected $((2 * N)) (every push once)"; done
for i in 5 6 7 8 9; do
  awk -v v="${V[$i]}" -v m=$((2 * N)) 'BEGIN { exit !(v > 0 && v <= m) }' || fail "async: server 1's element $i is ${V[$i]}, not in (0, $((2 * N))]"
done
wait "$REP_PID" || fail "the async replacement did not exit 0"
pass "async: server 1 SIGKILLed and replaced: server 0's values exactly $((2 * N)), server 1's ${V[5]} (<= $((2 * N)))"

# --- 3. lost before any checkpoint: it cannot be replaced ---
# (a checkpoint directory but no period: no checkpoint is ever taken; the
# servers' debug lines say which is which once the table is defined)
# (--persist: the cluster outlives its failed workers, for the refusal)
export PARAMD_LOG=debug
cluster sync 1000000 --replace-s 30 --persist --metrics 127.0.0.1:0
unset PARAMD_LOG
for k in 0 1; do wait_line "$TMP/server.$k.log" "server [01]: debug: table 1: shard"; done
kill_server 1
why="no checkpoint has completed yet to restore its shard from \(the first is still to come"
wait_line "$TMP/coordinator.log" "server 1 was lost and cannot be replaced: $why"
for r in 0 1; do
  wait "${TOY_PIDS[$r]}" && fail "worker $r exited 0 with its server lost for good"
  expect_line "$TMP/toy.$r.out" "server 1 was lost and cannot be replaced: $why"
done
"$PARAMD" status --coordinator "$COORD" >"$TMP/status.out" 2>&1
expect_line "$TMP/status.out" "server 1: LOST for good: not replaced"
"$PARAMD" status --coordinator "$COORD" --json >"$TMP/status.json"
jq -e '.servers[1].slot == "gone" and .servers[0].slot == "up"' "$TMP/status.json" >/dev/null \
  || { cat "$TMP/status.json"; fail "paramd status --json: server 1's slot is not gone"; }
MURL=$(sed -nE 's|.*metrics at (http://[^ ]+/metrics).*|\1|p' "$TMP/coordinator.log" | head -1)
[ -n "$MURL" ] || fail "the coordinator did not say where its metrics are"
curl -sf "$MURL" >"$TMP/metrics.txt" || fail "no metrics at $MURL"
for want in 'paramd_server_slots\{state="up"\} 1' 'paramd_server_slots\{state="gone"\} 1' \
    'paramd_server_slots\{state="lost"\} 0' 'paramd_servers_lost_total 1' 'paramd_servers_replaced_total 0'; do
  expect_line "$TMP/metrics.txt" "^$want\$"
done
"$PARAMD" server --coordinator "$COORD" >"$TMP/refused.log" 2>&1 && fail "a replacement was taken with no checkpoint"
expect_line "$TMP/refused.log" "this cluster takes no replacement server \(it cannot take server 1's place: server 1 was lost and cannot be replaced: $why"
kill -KILL "$COORD_PID" "$(pid_of "$(index_log 0)")" 2>/dev/null
wait
pass "lost before any checkpoint: not replaceable, said by the coordinator, both workers, paramd status and the refused server"

# --- 4. no replacement within --replace-s ---
cluster sync 1000000 --checkpoint-every-clocks 20 --replace-s 1
wait_line "$TMP/coordinator.log" "checkpoint 1 at clock [0-9]+"
kill_server 1
for r in 0 1; do
  wait "${TOY_PIDS[$r]}" && fail "worker $r exited 0 with no replacement"
  expect_line "$TMP/toy.$r.out" "server 1 was lost and no replacement registered within 1 s \(--replace-s\)"
done
expect_line "$TMP/coordinator.log" "error: server 1 was lost and no replacement registered within 1 s"
kill -KILL "$COORD_PID" "$(pid_of "$(index_log 0)")" 2>/dev/null
wait
pass "no replacement within --replace-s 1: both workers failed, saying so"

# --- 5. paramd local --replace-servers: it starts the replacement ---
rm -f "$TMP/local.log"
setsid "$PARAMD" local --servers 2 --workers 2 --replace-servers 1 --checkpoint-dir "$TMP/lroot" \
  --checkpoint-every 0.2 -- "$TOY" --consistency sync --iters 6000 --sleep-ms 1 \
  >"$TMP/local.log" 2>&1 &
LOCAL=$!; PIDS+=($LOCAL)
wait_line "$TMP/local.log" "coordinator: info: checkpoint 2 at clock"
victim=$(session_child $LOCAL server)
[ -n "$victim" ] || { cat "$TMP/local.log"; fail "no server child to kill"; }
kill -KILL "$victim"
wait $LOCAL; rc=$?
[ $rc = 3 ] || { cat "$TMP/local.log"; fail "paramd local --replace-servers 1 exited $rc after a server was killed, expected 3"; }
expect_line "$TMP/local.log" "^paramd local: server [01] exited \(killed by signal 9.*\) while workers were running; starting a replacement, which restores that shard from the newest checkpoint while the other servers keep theirs \(0 more allowed\)"
expect_line "$TMP/local.log" "coordinator: warning: server [01] replaced by .* goes on at clock [0-9]+"
expect_line "$TMP/local.log" "^paramd local: server [01] exited \(killed by signal 9.*\); a replacement restored its shard from the newest checkpoint, the other servers keeping theirs, and the run finished"
grep -q "final params" "$TMP/local.log" || fail "paramd local: no final params"
pass "paramd local --replace-servers 1: a SIGKILLed server replaced by a new one, the run finished, exit 3"

# --- 5b. a server whose link to the coordinator breaks and comes back ---
# (paramd server --coordinator-fault, a testing aid: its 6th frame to the
# coordinator fails) Its slot waits for a replacement for a moment, then
# is its own again: nothing is restored, every value exact, exit 0.
rm -f "$TMP/coordinator.log" "$TMP"/server.*.log "$TMP"/toy.*.out; rm -rf "$TMP/root"
start_coordinator 2 2 --heartbeat-timeout-ms 2000 --checkpoint-dir "$TMP/root" \
  --checkpoint-every-clocks 20 --replace-s 30
SERVER_PIDS=()
"$PARAMD" server --coordinator "$COORD" --coordinator-fault send_fail=6 >>"$TMP/server.0.log" 2>&1 &
SERVER_PIDS+=($!); PIDS+=($!)
"$PARAMD" server --coordinator "$COORD" >>"$TMP/server.1.log" 2>&1 &
SERVER_PIDS+=($!); PIDS+=($!)
start_toys sync 5000
wait_line "$TMP/coordinator.log" "server [01] came back before a replacement took its place: its slot is its own again"
kill -0 "${TOY_PIDS[0]}" 2>/dev/null || fail "the toys ended before the server's link broke: make them longer"
for r in 0 1; do wait "${TOY_PIDS[$r]}" || { cat "$TMP/toy.$r.out"; fail "worker $r failed across the broken link"; }; done
mapfile -t V < <(values "$TMP/toy.0.out")
for i in $(seq 0 9); do [ "${V[$i]}" = 5000 ] || fail "element $i is ${V[$i]}, expected 5000 (nothing lost)"; done
wait "$COORD_PID" || { cat "$TMP/coordinator.log"; fail "the coordinator did not exit 0 after its server came back"; }
for p in "${SERVER_PIDS[@]}"; do wait "$p" || fail "a server did not exit 0 (pid $p)"; done
expect_line "$TMP/coordinator.log" "error: server [01] disconnected"
pass "a server's link to the coordinator broke and came back: its slot its own again, no replacement, every value 5000, exit 0"

# --- 6. paramd train --replace-servers: shared buffers in the replacement ---
# (shared memory only: over TCP nothing is mapped) The workers' buffers
# from paramd_alloc are mapped into the new server too: their pushes reach
# it by reference, as they reached the lost one.
if [ "${PARAMD_TRANSPORT:-auto}" != tcp ]; then
  setsid "$PARAMD" train --model mlp --workers 2 --servers 2 --steps 200000 --limit 2000 \
    --eval-every 100000 --quiet --checkpoint-dir "$TMP/troot" --checkpoint-every 0.3 \
    --replace-servers 1 --out "$TMP/trun" >"$TMP/train.log" 2>&1 &
  TR=$!; PIDS+=($TR)
  wait_line "$TMP/train.log" "coordinator: info: checkpoint 2 at clock"
  ADDR=$(sed -nE 's/.*coordinator listening on ([0-9.:]+) .*/\1/p' "$TMP/train.log" | head -1)
  victim=$(session_child $TR server)
  [ -n "$victim" ] || { cat "$TMP/train.log"; fail "no server of paramd train to kill"; }
  kill -KILL "$victim"
  wait_line "$TMP/train.log" "coordinator: warning: server [01] replaced by"
  K=$(sed -nE 's/.*coordinator: warning: server ([01]) replaced by.*/\1/p' "$TMP/train.log" | head -1)
  # until the replacement took a push through a mapped buffer (60 s)
  end=$((SECONDS + 60))
  until "$PARAMD" stats --coordinator "$ADDR" >"$TMP/stats.out" 2>&1 &&
      awk -v k="$K" '/^server / { on = ($2 == k) } on && /shared buffers mapped/ { ok = $4 > 0 && $8 > 0 }
                     END { exit !ok }' "$TMP/stats.out"; do
    [ $SECONDS -lt $end ] || { cat "$TMP/stats.out"; fail "server $K's replacement never took a push through a shared buffer"; }
    sleep 0.1
  done
  grep -q "map epoch 2" "$TMP/stats.out" || fail "the map's epoch did not go up with the replacement"
  kill -TERM $TR; wait $TR
  pass "paramd train --replace-servers 1: server $K replaced, the workers' shared buffers mapped into the new one (pushes by reference), map epoch 2"
fi
