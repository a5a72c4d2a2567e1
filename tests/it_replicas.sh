#!/usr/bin/env bash
# Replicated shards (docs/durability.md, "Replicated shards"), on 2
# servers with a copy each (--replicas 2) and 2 workers:
#  0. wrong --replicas values are refused, naming them (coordinator,
#     local, train);
#  1. the seed's async toy (rule add), for 3 seeds: a server picked at
#     random (a primary or a copy) is SIGKILLed at a random push; a server
#     started by hand becomes a copy, seeded while the toys run; then the
#     primary of that copy's slot is SIGKILLed at a random later push, so
#     that the new copy takes its place: every element ends at exactly 2N
#     (every acknowledged push applied, none twice), and the coordinator
#     says in one line which copy serves the slot and after how long;
#  2. sync toy, a primary SIGKILLed at a random clock: every element
#     exactly N; async sparse pushes with duplicate keys and requests in
#     flight (tool_sparse hammer): every sum exact; sync sparse toy:
#     every row exact;
#  3. what operators see: paramd status and the metrics show the copies
#     and count the promotion; a server beyond S x R is refused, saying
#     so; a worker's connection to a copy and REPL / SEED from a worker
#     are refused (tool_trust's probes in it_trust);
#  4. a slot whose primary is SIGKILLed, then its copy as the coordinator
#     promotes it: the workers fail naming the slot and why, the
#     coordinator exits 3;
#  5. paramd local --replicas 2: two servers SIGKILLed one after the
#     other (the second the new primary): it starts new copies, exits 0,
#     every value exact;
#  6. paramd train --replicas 2 (sync, adam, checkpointed): a server
#     SIGKILLed mid-run: the final weights are bit-identical to a run
#     without copies; resumed from one of its checkpoints: bit-identical;
#  7. a copy stopped (SIGSTOP) under the async toy, servers with
#     --copy-timeout-ms 1000: its primary drops it, saying why, the toys
#     go on and end exact; continued, the copy stops, saying it was
#     dropped;
#  8. paramd local --replicas 2 --restarts 1, the coordinator SIGKILLed:
#     the copies stop, the primaries go on, the coordinator started again
#     takes them back, new copies are seeded, the values end exact.
# transports: tcp shm
source "$(dirname "$0")/lib.sh"
TOY=$BUILD/examples/toy
cd "$TMP"

# role_log primary|copy K: the log of the running server that is slot K's
# primary (it seeded a copy, or was promoted) or its copy (it was seeded
# and not promoted), of server.*.log
role_log() {
  local f p
  for f in "$TMP"/server.*.log; do
    p=$(pid_of "$f"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null || continue # (a killed one)
    if [ "$1" = primary ]; then
      grep -Eq "slot $2: copy [0-9]+ at .* seeded|copy [0-9]+ of slot $2 promoted" "$f" || continue
      grep -q "copy [0-9] of slot $2: seeded" "$f" && ! grep -q "of slot $2 promoted" "$f" && continue
    else
      grep -q "copy [0-9] of slot $2: seeded by its primary" "$f" || continue
      grep -q "of slot $2 promoted" "$f" && continue
    fi
    echo "$f"; return
  done
}
# pid_of LOG: the pid of the server writing LOG (SERVER_LOGS, SERVER_PIDS)
pid_of() {
  local k; for k in "${!SERVER_LOGS[@]}"; do
    [ "${SERVER_LOGS[$k]}" = "$1" ] && { echo "${SERVER_PIDS[$k]}"; return; }
  done
}
# pid_of_server COORD K: the pid of the process serving slot K now (its
# address from paramd status, its pid from the socket listening there)
pid_of_server() {
  local addr port
  addr=$("$PARAMD" status --coordinator "$1" | sed -nE "s/^  server $2 at ([^:]+:[0-9]+): .*/\1/p")
  port=${addr##*:}
  [ -n "$port" ] && ss -ltnpH "sport = :$port" | sed -nE 's/.*pid=([0-9]+).*/\1/p' | head -1
}
# kill_log LOG: SIGKILL the server writing LOG and reap it
kill_log() {
  local p; p=$(pid_of "$1")
  [ -n "$p" ] || fail "no server writes $1"
  kill -KILL "$p" 2>/dev/null || { cat "$1"; fail "the server writing $1 had exited by itself"; }
  wait "$p" 2>/dev/null
}
# add_server: one more server against $COORD (its log server.N.log)
add_server() {
  local n=${#SERVER_PIDS[@]}
  "$PARAMD" server --coordinator "$COORD" ${SERVER_ARGS:-} >>"$TMP/server.$n.log" 2>&1 &
  SERVER_PIDS+=($!); PIDS+=($!); SERVER_LOGS+=("$TMP/server.$n.log")
}
# cluster [coordinator args]: a coordinator with 2 servers and a copy of
# each (4 servers, SERVER_PIDS / SERVER_LOGS), waiting until every copy is
# live
cluster() {
  rm -rf "$TMP/coordinator.log" "$TMP"/server.*.log "$TMP"/w.*.out
  start_coordinator 2 2 --replicas 2 "$@"
  SERVER_PIDS=(); SERVER_LOGS=()
  for _ in 1 2 3 4; do add_server; done
}
promoted_line='server ([01]) lost \(127\.0\.0\.1:[0-9]+\): its copy at 127\.0\.0\.1:[0-9]+ serves the slot after ([0-9]+) ms \(map epoch [0-9]+\); no acknowledged update was lost'

# --- 0. wrong arguments ---
for v in 0 9 x; do
  refused 2 "--replicas '$v' is not 1\.\.8 \(copies of each shard\)" \
    "$PARAMD" coordinator --servers 1 --workers 1 --replicas "$v"
  refused 2 "--replicas '$v' is not 1\.\.8" "$PARAMD" local --replicas "$v" -- "$TOY"
  refused 2 "--replicas '$v' is not 1\.\.8" "$PARAMD" train --replicas "$v"
done
pass "--replicas 0, 9 and x refused by paramd coordinator, local and train, naming the range"

# --- 1. async toy: a random server, then a new copy's primary ---
N=6000 # (room for both kills before the toys end, under the sanitizers and load too)
for seed in 11 23 37; do
  RANDOM=$seed
  cluster --metrics 127.0.0.1:0
  wait_line "$TMP/coordinator.log" "every shard has its 2 copies"
  workers "$TOY" --consistency async --iters $N --sleep-ms 1
  k1=$((300 + RANDOM % 900)) victim=$((RANDOM % 4))
  frontier_reaches "$COORD" $k1
  kill_log "${SERVER_LOGS[$victim]}"
  add_server
  # the new server is a copy of the slot that lost one (the victim's, or
  # the victim's copy once it is promoted), seeded while the toys run
  wait_count "$TMP/coordinator.log" "server at 127\.0\.0\.1:[0-9]+ registered as copy 1 of slot [01]; its primary .* seeds it" 3
  slot=$(sed -nE 's/.*registered as copy 1 of slot ([01]); .*/\1/p' "$TMP/coordinator.log" | tail -1)
  wait_count "$TMP/coordinator.log" "copy 1 of slot [01] \(.*\) is live" 3
  expect_line "${SERVER_LOGS[4]}" "copy 1 of slot $slot: seeded by its primary \(1 tables, [0-9]+ bytes\)"
  k2=$(( $(frontier "$COORD") + 100 + RANDOM % 600 ))
  # (at most two thirds of the way: a kill must find the toys still
  # running, and one `paramd stats` poll may take long on a loaded machine)
  [ $k2 -lt $((N * 2 / 3)) ] || k2=$((N * 2 / 3))
  frontier_reaches "$COORD" $k2
  plog=$(role_log primary "$slot")
  [ -n "$plog" ] || fail "seed $seed: no log says it is slot $slot's primary"
  kill_log "$plog"
  workers_ok "seed $seed"
  mapfile -t V < <(values "$TMP/w.0.out")
  for i in $(seq 0 9); do
    [ "${V[$i]}" = $((2 * N)) ] || fail "seed $seed: element $i is ${V[$i]}, expected $((2 * N)) (every acknowledged push once)"
  done
  npro=$(grep -Ec "$promoted_line" "$TMP/coordinator.log")
  [ "$npro" -ge 1 ] || fail "seed $seed: no promotion line: $(cat "$TMP/coordinator.log")"
  ms=$(sed -nE "s/.*$promoted_line.*/\2/p" "$TMP/coordinator.log" | sort -n | tail -1)
  wait "$COORD_PID"; rc=$?
  [ $rc = 0 ] || fail "seed $seed: the coordinator exited $rc, expected 0 (its copies lost nothing)"
  expect_line "$TMP/coordinator.log" "[0-9] servers? w(as|ere) lost during the run; (its|their) cop(y|ies) took (its|their) place and nothing acknowledged was lost"
  pass "seed $seed: server $victim SIGKILLed at push $k1, a new copy of slot $slot seeded while training, slot $slot's primary SIGKILLed at $k2: every value exactly $((2 * N)); $npro promotion(s), the slowest serving after $ms ms"
done

# --- 2. sync toy; async sparse with duplicates in flight; sync sparse ---
N=2000
cluster
workers "$TOY" --consistency sync --iters $N --sleep-ms 1
RANDOM=5; k=$((200 + RANDOM % 1200))
frontier_reaches "$COORD" $k
kill_log "$(role_log primary 1)"
workers_ok "sync"
mapfile -t V < <(values "$TMP/w.0.out")
for i in $(seq 0 9); do [ "${V[$i]}" = $N ] || fail "sync: element $i is ${V[$i]}, expected $N"; done
expect_line "$TMP/coordinator.log" "$promoted_line"
pass "sync toy: slot 1's primary SIGKILLed at clock $k: every value exactly $N"

cluster
workers "$BUILD/tests/tool_sparse" hammer 400
sleep_until=$((SECONDS + 30))
until grep -q "copy 1 of slot 0: seeded" "$TMP"/server.*.log && [ -n "$(role_log primary 0)" ]; do
  [ $SECONDS -lt $sleep_until ] || fail "no primary of slot 0 said so"; sleep 0.02
done
# (the hammer's pushes are async: the coordinator's view of its progress
# is the servers' push count)
until "$PARAMD" stats --coordinator "$COORD" 2>/dev/null | grep -Eq "^  table 1 .* pushes ([2-9][0-9]{2}|[0-9]{4,}) "; do
  kill -0 "${W_PIDS[0]}" 2>/dev/null || break; sleep 0.02
done
kill_log "$(role_log primary 0)"
workers_ok "sparse hammer"
expect_line "$TMP/w.0.out" "hammer ok: W=2 S=2, 800 async pushes of 300 keys each, every sum exact"
expect_line "$TMP/coordinator.log" "$promoted_line"
pass "async sparse pushes with duplicate keys, 4 in flight: slot 0's primary SIGKILLed: every sum exact"

cluster
workers "$BUILD/tests/tool_sparse" toy $N
frontier_reaches "$COORD" $((300 + RANDOM % 1000))
kill_log "$(role_log primary 1)"
workers_ok "sparse toy"
awk -v n=$N '/^key / { seen++; if ($6 + 0 != n) { print "key " $2 ": " $6; bad = 1 } }
  END { exit bad || seen != 24 }' "$TMP/w.0.out" \
  || { cat "$TMP/w.0.out"; fail "sparse toy: a row is not $N"; }
pass "sync sparse toy: slot 1's primary SIGKILLed: every row exactly $N"

# --- 3. what operators see; a server too many ---
cluster --metrics 127.0.0.1:0 --persist --max-workers 3
wait_line "$TMP/coordinator.log" "every shard has its 2 copies"
"$PARAMD" status --coordinator "$COORD" >st.txt || fail "paramd status: $(cat st.txt)"
for k in 0 1; do
  expect_line st.txt "^  copy 1 of server $k at 127\.0\.0\.1:[0-9]+: live \(fed every update; takes the server's place if it is lost\)"
done
"$PARAMD" status --coordinator "$COORD" --json >st.json
for k in 0 1; do
  grep -Eq "\"copies\": \[.*\{\"server\": $k, \"copy\": 1, \"address\": \"127\.0\.0\.1:[0-9]+\", \"state\": \"live\"\}" st.json \
    || fail "paramd status --json: no live copy of server $k: $(cat st.json)"
done
"$PARAMD" server --coordinator "$COORD" >extra.log 2>&1 && fail "a fifth server was taken"
expect_line extra.log "the cluster already has its 2 servers and 1 copies of each \(--servers, --replicas\)"
MURL=$(sed -nE 's|.*metrics at (http://[^ ]+/metrics).*|\1|p' "$TMP/coordinator.log" | head -1)
[ -n "$MURL" ] || fail "the coordinator says no metrics address"
curl -fsS "$MURL" >m1.txt
expect_line m1.txt '^paramd_server_copies\{state="live"\} 2$'
expect_line m1.txt '^paramd_server_promotions_total 0$'
workers "$TOY" --consistency async --iters 1000000 --sleep-ms 1
frontier_reaches "$COORD" 50
kill_log "$(role_log primary 0)"
wait_line "$TMP/coordinator.log" "$promoted_line"
curl -fsS "$MURL" >m2.txt
expect_line m2.txt '^paramd_server_promotions_total 1$'
expect_line m2.txt '^paramd_server_slots\{state="up"\} 2$'
"$PARAMD" status --coordinator "$COORD" >st2.txt
[ "$(grep -c "^  copy 1 of server" st2.txt)" = 1 ] || fail "after the promotion: $(cat st2.txt)"
# raw probes of slot 1's copy (tests/tool_trust.c), by a third worker
# that joins the running cluster (its join goes to the copies too)
CADDR=$(sed -nE 's/^  copy 1 of server 1 at ([^:]+:[0-9]+): live.*/\1/p' st2.txt)
[ -n "$CADDR" ] || fail "no live copy of server 1: $(cat st2.txt)"
PARAMD_COORDINATOR=$COORD "$BUILD/tests/tool_trust" copy "$CADDR" 1 >trust.out 2>&1 ||
  { cat trust.out; fail "tool_trust copy"; }
expect_line trust.out "^trust ok: copy$"
clog=$(role_log copy 1)
expect_line "$clog" "rejected REPL from .*: REPL comes only from a shard's primary to its copy"
# the slot that lost its copy takes a new server as one
add_server
wait_line "$TMP/coordinator.log" "registered as copy 1 of slot 0; its primary"
kill -KILL "${W_PIDS[@]}" "$COORD_PID" "${SERVER_PIDS[@]}" 2>/dev/null; wait 2>/dev/null
pass "paramd status (text and JSON) and the metrics show the live copies and count the promotion; a fifth server is refused, naming --servers and --replicas; a worker, a second feed, REPL and SEED are refused by a copy; a server started later becomes slot 0's new copy"

# --- 4. a slot with no live copy ---
cluster
wait_line "$TMP/coordinator.log" "every shard has its 2 copies"
workers "$TOY" --consistency sync --iters 1000000 --sleep-ms 1
frontier_reaches "$COORD" 50
P=$(pid_of "$(role_log primary 1)") C=$(pid_of "$(role_log copy 1)")
# the primary first, then its copy as soon as the coordinator promotes it:
# a worker may be told of the copy and find it dead (it asks again)
kill -KILL "$P"; wait "$P" 2>/dev/null
wait_line "$TMP/coordinator.log" "server 1 \(127\.0\.0\.1:[0-9]+\) lost; promoting its copy"
kill -KILL "$C"; wait "$C" 2>/dev/null
for r in 0 1; do
  wait "${W_PIDS[$r]}" && fail "worker $r succeeded with slot 1 and its copy lost"
done
grep -hE "no copy of its shard was live" "$TMP"/w.*.out >/dev/null ||
  { cat "$TMP"/w.*.out; fail "no worker said why slot 1 cannot go on"; }
expect_line "$TMP/coordinator.log" "server 1 was lost and no copy of its shard was live to take its place \(--replicas 2\)"
wait "$COORD_PID"; rc=$?
[ $rc = 3 ] || fail "the coordinator exited $rc with a slot lost for good, expected 3"
pass "slot 1's primary SIGKILLed, then its copy as it is promoted: the workers fail saying no copy was live, the coordinator exits 3"

# --- 5. paramd local --replicas 2 ---
N=4000
setsid "$PARAMD" local --servers 2 --workers 2 --replicas 2 -- "$TOY" --consistency async \
  --iters $N --sleep-ms 1 >local.out 2>&1 &
LP=$!; PIDS+=($LP)
wait_line local.out "coordinator listening on 127\.0\.0\.1:[0-9]+"
LC=$(sed -nE 's/.*coordinator listening on (127\.0\.0\.1:[0-9]+).*/\1/p' local.out | head -1)
wait_line local.out "every shard has its 2 copies"
for round in 1 2; do
  frontier_reaches "$LC" $((round * 1200))
  victim=$(pid_of_server "$LC" 0)
  [ -n "$victim" ] || fail "round $round: no process serves slot 0"
  kill -KILL "$victim"
  wait_line local.out "paramd local: server [0-9]+ exited \(killed by signal 9.*\) while workers were running; the shards have copies \(--replicas 2\): starting a new server" 20
  wait_count local.out "copy 1 of slot 0 \(127\.0\.0\.1:[0-9]+\) is live" $((round + 1))
done
wait $LP; rc=$?
[ $rc = 0 ] || { cat local.out; fail "paramd local --replicas 2 exited $rc after two servers were SIGKILLed, expected 0"; }
mapfile -t V < <(values local.out)
for i in $(seq 0 9); do [ "${V[$i]}" = $((2 * N)) ] || fail "paramd local: element $i is ${V[$i]}, expected $((2 * N))"; done
expect_line local.out "^paramd local: 2 servers exited during the run; with --replicas 2 no acknowledged update was lost, and as many new copies were seeded"
[ "$(grep -Ec "$promoted_line" local.out)" = 2 ] || fail "paramd local: not two promotions"
pass "paramd local --replicas 2: slot 0's primary SIGKILLed twice (the second time the promoted copy): new copies seeded, exit 0, every value exactly $((2 * N))"

# --- 6. paramd train: bit-identical through a primary's SIGKILL ---
if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  O=(--model mlp --workers 2 --servers 2 --steps 600 --limit 4000 --quiet --rule adam --lr 0.001 --seed 3)
  "$PARAMD" train "${O[@]}" --out ref --save-params ref.bin >ref.log 2>&1 || { cat ref.log; fail "reference run"; }
  setsid "$PARAMD" train "${O[@]}" --replicas 2 --out r --save-params r.bin \
    --checkpoint-dir "$TMP/rc" --checkpoint-every 0.5 >r.log 2>&1 &
  TRAIN=$!; PIDS+=($TRAIN)
  wait_line r.log "coordinator listening on 127\.0\.0\.1:[0-9]+"
  TC=$(sed -nE 's/.*coordinator listening on (127\.0\.0\.1:[0-9]+).*/\1/p' r.log | head -1)
  RANDOM=7; frontier_reaches "$TC" $((100 + RANDOM % 400)) r.log
  victim=$(session_child $TRAIN server)
  kill -KILL "$victim"
  wait $TRAIN; rc=$?
  [ $rc = 0 ] || { cat r.log; fail "paramd train --replicas 2 exited $rc after a server was SIGKILLed"; }
  cmp -s ref.bin r.bin || fail "a server SIGKILLed under --replicas 2: the final weights differ from the run without copies"
  expect_line r.log "paramd local: 1 server exited during the run; with --replicas 2 no acknowledged update was lost, and a new copy was seeded"
  pass "paramd train --replicas 2 (sync, adam): a server SIGKILLed mid-run, a new copy seeded while training: final weights bit-identical to the run without copies"
  # its checkpoints (the primaries', the promoted one's too) resume a
  # replicated run, bit-identical again (copies take the seed, not --restore)
  ck=""
  for d in "$TMP"/rc/ckpt-*; do [ -f "$d/MANIFEST" ] && { ck=$d; break; }; done # the first complete
  [ -n "$ck" ] || { cat r.log; fail "the replicated run took no checkpoint"; }
  "$PARAMD" train "${O[@]}" --replicas 2 --resume "$ck" --out b --save-params b.bin >b.log 2>&1 ||
    { cat b.log; fail "resuming a replicated run"; }
  expect_line b.log "copy 1 of slot [01]: its primary's seed brings the shard \(not --restore"
  cmp -s ref.bin b.bin || fail "resumed from $ck under --replicas 2: the final weights differ"
  pass "a replicated run resumed from its checkpoint $(basename "$ck"): final weights bit-identical"
else
  echo "skipped part 6: no Fashion-MNIST at /usr/share/datasets/fashion-mnist"
fi

# --- 7. a copy that stops acknowledging ---
N=3000
SERVER_ARGS="--copy-timeout-ms 1000" cluster
wait_line "$TMP/coordinator.log" "every shard has its 2 copies"
workers "$TOY" --consistency async --iters $N --sleep-ms 1
frontier_reaches "$COORD" 300
clog=$(role_log copy 0); CP=$(pid_of "$clog")
kill -STOP "$CP"
wait_line "$TMP/coordinator.log" "slot 0's primary dropped copy 1 \(127\.0\.0\.1:[0-9]+\): it did not acknowledge an update within 1000 ms \(--copy-timeout-ms\): stopped or hung\?" 30
kill -CONT "$CP"
workers_ok "a stopped copy"
mapfile -t V < <(values "$TMP/w.0.out")
for i in $(seq 0 9); do [ "${V[$i]}" = $((2 * N)) ] || fail "a stopped copy: element $i is ${V[$i]}, expected $((2 * N))"; done
wait "$CP" && fail "the dropped copy exited 0"
expect_line "$clog" "the coordinator ended the cluster: the primary of slot 0 dropped this copy: it did not acknowledge"
wait "$COORD_PID" || fail "the coordinator exited $? after a copy was dropped (nothing was lost)"
pass "a copy SIGSTOPped: its primary dropped it after --copy-timeout-ms 1000, the toys ended exact ($((2 * N))), the continued copy stopped saying it was dropped"

# --- 8. the coordinator SIGKILLed under paramd local --replicas 2 --restarts 1 ---
N=4000
setsid "$PARAMD" local --servers 2 --workers 2 --replicas 2 --restarts 1 -- "$TOY" \
  --consistency async --iters $N --sleep-ms 1 >lc.out 2>&1 &
LP=$!; PIDS+=($LP)
wait_line lc.out "every shard has its 2 copies"
LC=$(sed -nE 's/.*coordinator listening on (127\.0\.0\.1:[0-9]+).*/\1/p' lc.out | head -1)
frontier_reaches "$LC" 1000
kill -KILL "$(session_child $LP coordinator)"
wait_line lc.out "took the cluster back: all 2 servers rejoined"
wait_count lc.out "copy 1 of slot [01] \(127\.0\.0\.1:[0-9]+\) is live" 4
wait $LP; rc=$?
[ $rc = 3 ] || { cat lc.out; fail "paramd local --restarts 1 exited $rc after its coordinator was SIGKILLed, expected 3"; }
mapfile -t V < <(values lc.out)
for i in $(seq 0 9); do [ "${V[$i]}" = $((2 * N)) ] || fail "coordinator restart: element $i is ${V[$i]}, expected $((2 * N))"; done
expect_line lc.out "a coordinator started again took the running cluster back and the run finished"
pass "the coordinator SIGKILLed under --replicas 2 --restarts 1: taken back, both copies seeded anew, every value exactly $((2 * N))"
