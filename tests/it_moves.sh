#!/usr/bin/env bash
# Servers that join and leave (docs/durability.md, "Servers that join and
# leave"): a coordinator started with --elastic, servers started with
# paramd server --join:
#  0. wrong arguments are refused, naming them: paramd drain without
#     --server or with --server x, --replicas 8 with --elastic;
#  1. a cluster without --elastic refuses a joining server and a drain,
#     saying how to start one that takes them;
#  2. the seed's async toy (rule add) on 3 servers of host A: a server that
#     joins from host B takes a shard while the toys run (the coordinator
#     moves it: host A serves 2 more); paramd drain refused with no
#     standby and for a server that does not exist; a second server from
#     host B waits as a standby (paramd status, text and JSON, lists it;
#     host B serves only one fewer); paramd drain --server 1 moves server
#     1's shard to it while the toys run; the retired servers exit 0
#     saying why; every element ends at exactly 2N (no update lost or
#     applied twice); the metrics count 2 moves; a standby never needed
#     exits 0 when the cluster ends;
#  3. sync toy, a drain mid-run: every element exactly N;
#  4. async sparse pushes with duplicate keys, 4 in flight (tool_sparse
#     hammer), a drain mid-run: every sum exact (the standby started
#     before the cluster's servers: it takes none of their slots);
#  5. a standby SIGKILLed while it waits: a drain says there is no
#     standby; the cluster goes on;
#  6. paramd local --elastic: a server started by hand with --join, then a
#     drain while the toys run: exit 0, every element exactly 2N;
#  7. paramd train --elastic (sync, adam): a drain mid-run; the final
#     weights are bit-identical to a run without one;
#  8. hosts that serve several shards: host A's `paramd server --shards 5`
#     serves all 4 (its fifth place waits as a standby); host B's `--join
#     --shards 3` takes 2 of them (its third place and A's two emptied
#     places wait as standbys too); drains of
#     host A (too few standbys elsewhere) and of a host that is not there
#     are refused, saying why; `paramd drain --host hostB` moves B's
#     shards back to A's places and stops B's; all while the async toy
#     runs: every element exactly 2N, every process exits 0.
# transports: tcp shm
source "$(dirname "$0")/lib.sh"
TOY=$BUILD/examples/toy
cd "$TMP"

running() { # WHAT: both workers still run
  for r in 0 1; do
    kill -0 "${W_PIDS[$r]}" 2>/dev/null ||
      fail "$1: worker $r had ended: the test moved nothing while training (slow machine?)"
  done
}
# server NAME [args]: a server against $COORD, its log server.NAME.log,
# its pid in SP[NAME]
declare -A SP
server() {
  local n=$1; shift
  "$PARAMD" server --coordinator "$COORD" "$@" >>"$TMP/server.$n.log" 2>&1 &
  SP[$n]=$!; PIDS+=($!)
}
# elastic S [args]: a coordinator for S servers and 2 workers, --elastic
elastic() {
  rm -rf "$TMP/coordinator.log" "$TMP"/server.*.log "$TMP"/w.*.out
  SP=()
  start_coordinator "$1" 2 --elastic "${@:2}"
}
drained_line='server ([0-9]) drained: its shard moved from 127\.0\.0\.1:[0-9]+ to 127\.0\.0\.1:[0-9]+ in [0-9]+ ms'
moved_line() { # K: the coordinator's line for a finished move of server K's shard
  echo "server $1's shard moved from 127\.0\.0\.1:[0-9]+ to 127\.0\.0\.1:[0-9]+.* in [0-9]+ ms \(seeding [0-9]+ ms, handover [0-9]+ ms; map epoch [0-9]+\); no update was lost"
}

# --- 0. wrong arguments ---
refused 2 "--server" "$PARAMD" drain --coordinator 127.0.0.1:1
refused 2 "--server 'x'" "$PARAMD" drain --coordinator 127.0.0.1:1 --server x
refused 2 "--replicas 8: at most 7 copies of a shard with --elastic" \
  "$PARAMD" coordinator --servers 1 --workers 1 --replicas 8 --elastic
pass "paramd drain without --server and with --server x, --replicas 8 --elastic: refused, naming them"

# --- 1. a cluster without --elastic ---
rm -f coordinator.log
start_coordinator 1 1
start_servers 1
until "$PARAMD" status --coordinator "$COORD" 2>/dev/null | grep -q "^  server 0 at "; do sleep 0.02; done
refused 1 "this cluster \(1 servers\) was not started with --elastic: no server can join it \(start the coordinator, paramd local or paramd train with --elastic\)" \
  "$PARAMD" server --coordinator "$COORD" --join
refused 1 "this cluster was not started with --elastic: its shards cannot move" \
  "$PARAMD" drain --coordinator "$COORD" --server 0
kill -KILL "$COORD_PID" "${SERVER_PIDS[@]}"; wait 2>/dev/null
pass "without --elastic: a joining server and a drain are refused, naming --elastic"

# --- 2. async toy: a server joins from a host with fewer shards; a drain ---
N=8000 # (long enough for the steps below under the sanitizers too)
elastic 3 --metrics 127.0.0.1:0
for k in 0 1 2; do server $k --host-id hostA; done
# (hosts A and B are other hosts than the workers': TCP, whatever the
# transport this test runs with; parts 3 to 5 are on the workers' host)
PARAMD_TRANSPORT=auto workers "$TOY" --consistency async --iters $N --sleep-ms 1
frontier_reaches "$COORD" 200
server J1 --join --host-id hostB
wait_line coordinator.log "$(moved_line '[012]')"
expect_line coordinator.log "shard moved from 127\.0\.0\.1:[0-9]+ to 127\.0\.0\.1:[0-9]+, which joined from a host with fewer shards, in"
refused 1 "no standby to take server 1's shard: start \`paramd server --join --coordinator ADDR\` first" \
  "$PARAMD" drain --coordinator "$COORD" --server 1
refused 1 "there is no server 7: the cluster has 3 \(0\.\.2\)" \
  "$PARAMD" drain --coordinator "$COORD" --server 7
server J2 --join --host-id hostB
wait_line coordinator.log "the standby at 127\.0\.0\.1:[0-9]+ waits: no host serves two shards more than its host hostB \(1\)"
"$PARAMD" status --coordinator "$COORD" >st.txt
expect_line st.txt "^  standby at 127\.0\.0\.1:[0-9]+: joined \(--join\), waits for a shard"
"$PARAMD" status --coordinator "$COORD" --json >st.json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["standbys"]) == 1, d["standbys"]' st.json ||
  fail "paramd status --json: not one standby: $(cat st.json)"
moved0=$(sed -nE "s/.*server ([012])'s shard moved from .*/\1/p" coordinator.log)
d=$(( (moved0 + 1) % 3 ))
running "before the drain"
"$PARAMD" drain --coordinator "$COORD" --server $d >drain.out 2>&1 || { cat drain.out coordinator.log; fail "paramd drain --server $d"; }
expect_line drain.out "$(moved_line $d)"
running "after the drain"
workers_ok "async toy"
mapfile -t V < <(values w.0.out)
for i in $(seq 0 9); do
  [ "${V[$i]}" = $((2 * N)) ] || fail "async: element $i is ${V[$i]}, expected $((2 * N)) (every push once)"
done
wait "$COORD_PID"; rc=$?
[ $rc = 0 ] || { cat coordinator.log; fail "the coordinator exited $rc after two moves, expected 0"; }
for k in 0 1 2 J1 J2; do # (the retired ones, the one left, the joined)
  wait "${SP[$k]}"; rc=$?
  [ $rc = 0 ] || { cat "server.$k.log"; fail "server.$k.log: the server exited $rc, expected 0"; }
done
cat server.*.log >servers.log
expect_line servers.log "server $moved0: info: retired \(a server joined from a host with fewer shards\): server $moved0's shard moved to 127\.0\.0\.1:[0-9]+; stopping"
expect_line servers.log "server $d: info: drained \(paramd drain\): server $d's shard moved to 127\.0\.0\.1:[0-9]+; stopping"
pass "async toy on 3 servers of host A: a server from host B took server $moved0's shard, paramd drain moved server $d's to a standby, both while training: every value exactly $((2 * N)); the retired servers exit 0 saying why"

# the metrics, scraped while a cluster runs (one more, short)
elastic 2 --metrics 127.0.0.1:0
server 0; server 1
workers "$TOY" --consistency async --iters 1000000 --sleep-ms 1
frontier_reaches "$COORD" 50
server J --join
wait_line coordinator.log "the standby at 127\.0\.0\.1:[0-9]+ waits"
MADDR=$(sed -nE 's/.*metrics at http:\/\/([^/]+)\/metrics.*/\1/p' coordinator.log | head -1)
[ -n "$MADDR" ] || fail "the coordinator did not say where its metrics are: $(cat coordinator.log)"
curl -fsS "http://$MADDR/metrics" >m1.txt || fail "scrape of $MADDR"
expect_line m1.txt '^paramd_server_standbys 1$'
expect_line m1.txt '^paramd_server_moves_total 0$'
"$PARAMD" drain --coordinator "$COORD" --server 0 >drain.out 2>&1 || { cat drain.out; fail "drain for the metrics"; }
curl -fsS "http://$MADDR/metrics" >m2.txt || fail "scrape of $MADDR"
expect_line m2.txt '^paramd_server_standbys 0$'
expect_line m2.txt '^paramd_server_moves_total 1$'
running "metrics"
kill -KILL "${W_PIDS[@]}" "$COORD_PID" "${SP[@]}" 2>/dev/null; wait 2>/dev/null
pass "the metrics count the standbys and the moves"

# --- 3. sync toy, a drain mid-run ---
N=4000
elastic 2
server 0; server 1
workers "$TOY" --consistency sync --iters $N --sleep-ms 1
RANDOM=7; k=$((100 + RANDOM % 400))
frontier_reaches "$COORD" $k
server J --join # (once the cluster has its servers: a standby)
wait_line coordinator.log "the standby at 127\.0\.0\.1:[0-9]+ waits"
"$PARAMD" drain --coordinator "$COORD" --server 1 >drain.out 2>&1 || { cat drain.out coordinator.log; fail "sync: paramd drain"; }
running "sync"
workers_ok "sync"
mapfile -t V < <(values w.0.out)
for i in $(seq 0 9); do [ "${V[$i]}" = $N ] || fail "sync: element $i is ${V[$i]}, expected $N"; done
wait "$COORD_PID" || fail "sync: the coordinator failed: $(cat coordinator.log)"
pass "sync toy: server 1 drained at clock $k: every value exactly $N"

# --- 4. async sparse pushes with duplicate keys, a drain mid-run ---
elastic 2
server J --join # (first: it waits for the cluster's servers, taking no slot)
server 0; server 1
workers "$BUILD/tests/tool_sparse" hammer 20000
until "$PARAMD" stats --coordinator "$COORD" 2>/dev/null | grep -Eq "^  table 1 .* pushes ([2-9][0-9]{2}|[0-9]{4,}) "; do
  kill -0 "${W_PIDS[0]}" 2>/dev/null || break; sleep 0.02
done
wait_line coordinator.log "the standby at 127\.0\.0\.1:[0-9]+ waits"
"$PARAMD" drain --coordinator "$COORD" --server 0 >drain.out 2>&1 || { cat drain.out coordinator.log; fail "sparse: paramd drain"; }
running "sparse hammer"
workers_ok "sparse hammer"
expect_line w.0.out "hammer ok: W=2 S=2, 40000 async pushes of 300 keys each, every sum exact"
expect_line coordinator.log "$(moved_line 0)"
wait "$COORD_PID" || fail "sparse: the coordinator failed: $(cat coordinator.log)"
pass "async sparse pushes with duplicate keys, 4 in flight: server 0 drained: every sum exact"

# --- 5. a standby SIGKILLed while it waits ---
elastic 2
server 0; server 1
workers "$TOY" --consistency async --iters 1000000 --sleep-ms 1
frontier_reaches "$COORD" 50
server J --join
wait_line coordinator.log "the standby at 127\.0\.0\.1:[0-9]+ waits"
kill -KILL "${SP[J]}"; wait "${SP[J]}" 2>/dev/null
refused 1 "no standby to take server 0's shard" "$PARAMD" drain --coordinator "$COORD" --server 0
running "a standby killed"
expect_line coordinator.log "the standby at 127\.0\.0\.1:[0-9]+ left"
kill -KILL "${W_PIDS[@]}" "$COORD_PID" "${SP[@]}" 2>/dev/null; wait 2>/dev/null
pass "a standby SIGKILLed while it waits: paramd drain says there is no standby, the toys go on"

# --- 6. paramd local --elastic: a server joins by hand, a drain ---
N=6000
setsid "$PARAMD" local --servers 2 --workers 2 --elastic -- "$TOY" --consistency async \
  --iters $N --sleep-ms 1 >local.out 2>&1 &
LP=$!; PIDS+=($LP)
wait_line local.out "coordinator listening on 127\.0\.0\.1:[0-9]+"
LC=$(sed -nE 's/.*coordinator listening on (127\.0\.0\.1:[0-9]+).*/\1/p' local.out | head -1)
frontier_reaches "$LC" 200
COORD=$LC; server L --join
wait_line local.out "the standby at 127\.0\.0\.1:[0-9]+ waits"
"$PARAMD" drain --coordinator "$LC" --server 0 >drain.out 2>&1 || { cat drain.out local.out; fail "local: paramd drain"; }
expect_line drain.out "$(moved_line 0)"
kill -0 "$LP" 2>/dev/null || fail "paramd local had ended before the drain returned (slow machine?)"
wait "$LP"; rc=$?
[ $rc = 0 ] || { cat local.out; fail "paramd local --elastic exited $rc after a drain, expected 0"; }
mapfile -t V < <(values local.out)
for i in $(seq 0 9); do
  [ "${V[$i]}" = $((2 * N)) ] || fail "local: element $i is ${V[$i]}, expected $((2 * N))"
done
wait "${SP[L]}" || fail "the server that joined paramd local's cluster failed: $(cat server.L.log)"
expect_line local.out "server 0: info: drained \(paramd drain\): server 0's shard moved to 127\.0\.0\.1:[0-9]+; stopping"
pass "paramd local --elastic: a server started by hand with --join took server 0's shard (paramd drain) while training: every value exactly $((2 * N)), exit 0"

# --- 7. paramd train --elastic: a drain mid-run, bit-identical weights ---
if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  O=(--model mlp --workers 2 --servers 2 --steps 600 --limit 4000 --quiet --rule adam --lr 0.001 --seed 3)
  "$PARAMD" train "${O[@]}" --out ref --save-params ref.bin >ref.log 2>&1 || { cat ref.log; fail "reference run"; }
  setsid "$PARAMD" train "${O[@]}" --elastic --out e --save-params e.bin >e.log 2>&1 &
  TRAIN=$!; PIDS+=($TRAIN)
  wait_line e.log "coordinator listening on 127\.0\.0\.1:[0-9]+"
  COORD=$(sed -nE 's/.*coordinator listening on (127\.0\.0\.1:[0-9]+).*/\1/p' e.log | head -1)
  RANDOM=3; frontier_reaches "$COORD" $((100 + RANDOM % 300)) e.log
  server T --join # (once the cluster has its servers: a standby)
  until "$PARAMD" status --coordinator "$COORD" 2>/dev/null | grep -q "^  standby at "; do
    kill -0 "${SP[T]}" 2>/dev/null || fail "the server started with --join ended: $(cat server.T.log)"
    kill -0 $TRAIN 2>/dev/null || { cat e.log; fail "paramd train ended before a standby joined (slow machine?)"; }
    sleep 0.02
  done
  "$PARAMD" drain --coordinator "$COORD" --server 1 >drain.out 2>&1 || { cat drain.out e.log; fail "train: paramd drain"; }
  expect_line drain.out "$(moved_line 1)"
  wait $TRAIN; rc=$?
  [ $rc = 0 ] || { cat e.log; fail "paramd train --elastic exited $rc after a drain"; }
  cmp -s ref.bin e.bin || fail "a drain under paramd train --elastic: the final weights differ from the run without one"
  wait "${SP[T]}" || fail "the server that joined paramd train's cluster failed: $(cat server.T.log)"
  pass "paramd train --elastic (sync, adam): server 1 drained to a server that joined, mid-run: final weights bit-identical to a run without a move"
else
  echo "skipped part 7: no Fashion-MNIST at /usr/share/datasets/fashion-mnist"
fi

# --- 8. hosts that serve several shards (--shards): one joins and takes
# its share, a host drain gives it back ---
N=8000
elastic 4
server A --shards 5 --host-id hostA
# (hosts A and B are other hosts than the workers': TCP, as in part 2)
PARAMD_TRANSPORT=auto workers "$TOY" --consistency async --iters $N --sleep-ms 1
frontier_reaches "$COORD" $((N / 10)) coordinator.log
server B --join --shards 3 --host-id hostB
# host B's first two places take a shard each from host A (4 - 0, then
# 3 - 1: two more), its third waits (2 - 2); host A's two places whose
# shards left wait as standbys for others
wait_count coordinator.log "the standby at 127\.0\.0\.1:[0-9]+ \(host hostB\) takes server [0-3]'s shard: server [0-3]'s host hostA serves [43] shards, this one's [01]" 2
wait_count coordinator.log "$(moved_line '[0-3]')" 2
wait_count server.A.log "place [0-4] of this host's 5 \(--shards\) waits as a standby for another shard" 2
until [ "$("$PARAMD" status --coordinator "$COORD" | grep -c '^  standby at ')" = 4 ]; do
  kill -0 "${SP[B]}" 2>/dev/null || fail "host B's places ended: $(cat server.B.log)"
  sleep 0.02
done
running "host B joined"
refused 1 "host hostA serves 2 shards but 1 standby waits on other hosts: start \`paramd server --join --coordinator ADDR\` \(or with --shards N\) on another host first" \
  "$PARAMD" drain --coordinator "$COORD" --host hostA
refused 1 "no server or standby of host hostC is in this cluster" "$PARAMD" drain --coordinator "$COORD" --host hostC
refused 2 "--server K and --host H are two drains: give one" "$PARAMD" drain --coordinator "$COORD" --host hostB --server 1
"$PARAMD" drain --coordinator "$COORD" --host hostB >drainB.out 2>&1 || { cat drainB.out coordinator.log; fail "paramd drain --host hostB"; }
expect_line drainB.out "^host hostB's 2 shards moved to other hosts in [0-9]+ ms \(server [0-3] to 127\.0\.0\.1:[0-9]+, server [0-3] to 127\.0\.0\.1:[0-9]+; map epoch [0-9]+\); no update was lost; 1 standby of host hostB told to stop$"
wait "${SP[B]}" || fail "host B's places did not all exit 0 after its drain: $(cat server.B.log)"
[ "$(grep -c "drained (paramd drain --host): server [0-3]'s shard moved to 127\.0\.0\.1:[0-9]*; stopping" server.B.log)" = 2 ] ||
  fail "host B's two serving places did not both stop, saying why: $(cat server.B.log)"
expect_line server.B.log "host hostB was drained \(paramd drain --host\): this standby stops"
running "host B drained"
workers_ok "hosts with --shards"
mapfile -t V < <(values "$TMP/w.0.out")
for i in $(seq 0 9); do
  [ "${V[$i]}" = $((2 * N)) ] || fail "--shards: element $i is ${V[$i]}, expected $((2 * N))"
done
wait "$COORD_PID" || fail "the coordinator exited non-zero after 4 moves: $(cat coordinator.log)"
wait "${SP[A]}" || fail "host A's places did not exit 0: $(cat server.A.log)"
expect_line server.A.log "the cluster ended before this standby was given a shard"
[ "$(grep -Ec "$(moved_line "[0-3]")" coordinator.log)" = 4 ] || fail "not 4 moves: $(cat coordinator.log)"
pass "host A serving 4 shards (--shards 5: a fifth place waits), host B joining with 3 places took 2 of them and paramd drain --host gave them back, while the async toy ran: every element exactly $((2 * N)); B's places stop saying why, everyone exits 0"
