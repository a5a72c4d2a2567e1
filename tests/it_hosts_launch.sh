#!/usr/bin/env bash
# paramd launch, host identity and start-up on one host (loopback, port 0,
# no root needed; tests/it_hosts_{mpirun,slurm,faults}.sh do it across
# simulated hosts):
#   - roles by rank from each launcher's variables (Open MPI, MPICH/PMI,
#     PMIx, Slurm with its node list, torchrun), with --dry-run;
#   - worlds that do not fit fail at once, saying the numbers;
#   - a cluster of 4 plain `paramd launch --rank R --world 4` processes
#     meeting through a rendezvous file: toy exact, the file removed after;
#     a file left by another job is not taken;
#   - a worker missing at start-up: the coordinator says which, then ends
#     the cluster at --startup-timeout-ms, with the reason in the
#     coordinator's, the server's and the other workers' errors;
#   - torchrun's RANK/WORLD_SIZE as a worker's rank, and a WORLD_SIZE that
#     is not the cluster's worker count refused with both numbers;
#   - host identity: shared memory only to a server with the worker's own
#     host id, TCP otherwise, as paramd stats lists per connection;
#     transport=shm to another host's server refused;
#   - --replicas 2 --elastic: roles and worlds by S x R; 7 plain launches,
#     servers of two host ids: each copy on the other host than its
#     slot's server; under the async toy a server joins and `paramd
#     drain` moves a shard to it, then a primary is SIGKILLed: every
#     element ends at exactly 2N, the coordinator exits 0.
source "$(dirname "$0")/lib.sh"
TOY=$BUILD/examples/toy
unset OMPI_COMM_WORLD_RANK PMI_RANK PMIX_RANK SLURM_PROCID RANK LOCAL_RANK PARAMD_RANK

# 1. Roles by rank.
dry() { # dry VAR=VALUE... LAUNCH-OPTIONS...
  local vars=()
  while [[ $1 == *=* && $1 != -* ]]; do vars+=("$1"); shift; done
  env "${vars[@]}" "$PARAMD" launch --dry-run "$@" -- "$TOY"
}
out=$(dry OMPI_COMM_WORLD_RANK=3 OMPI_COMM_WORLD_SIZE=6 OMPI_COMM_WORLD_LOCAL_SIZE=2 \
        PMIX_NAMESPACE=j7 --servers 2 --rendezvous "$TMP/r") || fail "dry run: $out"
[ "$out" = "rank 3 of 6 (Open MPI, OMPI_COMM_WORLD_RANK): worker 0 of 3; 2 servers, 3 workers; coordinator by rendezvous file $TMP/r; job pmix-j7; listen on 0.0.0.0" ] \
  || fail "Open MPI: $out"
out=$(dry PMI_RANK=1 PMI_SIZE=4 --servers 2 --coordinator node1:7070) || fail "$out"
[ "$out" = "rank 1 of 4 (MPICH/PMI, PMI_RANK): server; 2 servers, 1 workers; coordinator at node1:7070; listen on 0.0.0.0" ] \
  || fail "PMI: $out"
out=$(dry PMIX_RANK=0 --world 3 --servers 1 --coordinator node1:7070) || fail "$out"
[ "${out%%;*}" = "rank 0 of 3 (PMIx, PMIX_RANK): coordinator" ] || fail "PMIx: $out"
out=$(dry SLURM_PROCID=4 SLURM_NTASKS=5 SLURM_STEP_NODELIST='node[07-09,12],gpu1' \
        SLURM_JOB_ID=41 SLURM_STEP_ID=2 SLURM_STEP_NUM_NODES=5 --servers 2 --port 7070) || fail "$out"
[ "$out" = "rank 4 of 5 (Slurm, SLURM_PROCID): worker 1 of 2; 2 servers, 2 workers; coordinator at node07:7070; job slurm-41.2; listen on 0.0.0.0" ] \
  || fail "Slurm: $out"
out=$(dry RANK=3 WORLD_SIZE=4 MASTER_ADDR=trainer-0.svc --servers 1 --port 29600) || fail "$out"
[ "$out" = "rank 3 of 4 (torchrun, RANK): worker 1 of 2; 1 servers, 2 workers; coordinator at trainer-0.svc:29600; listen on 0.0.0.0" ] \
  || fail "torchrun: $out"
pass "roles by rank from Open MPI, MPICH/PMI, PMIx, Slurm (node list) and torchrun"

# 2. Worlds that do not fit.
bad() { # bad REGEX ENV... -- launch args
  local want=$1; shift
  env "$@" -- "$TOY" >"$TMP/bad" 2>&1 && fail "accepted: $*"
  expect_line "$TMP/bad" "$want"
}
bad "a world of 3 \(OMPI_COMM_WORLD_SIZE\) is too small for 1 coordinator \+ 2 servers \(--servers\) \+ at least 1 worker: start at least 4 processes" \
  OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=3 "$PARAMD" launch --servers 2 --port 7070 --coordinator-host h
bad "a world of 5 \(SLURM_NTASKS\) is not 1 coordinator \+ 2 servers \+ 3 workers \(--servers, --workers\) = 6: start 6 processes" \
  SLURM_PROCID=1 SLURM_NTASKS=5 "$PARAMD" launch --servers 2 --workers 3 --port 7070 --coordinator-host h
bad "PMIx gives this process's rank \(PMIX_RANK=2\) but not the world size: give it with --world N" \
  PMIX_RANK=2 "$PARAMD" launch --servers 1 --rendezvous "$TMP/r"
bad "--world 4 but Open MPI says OMPI_COMM_WORLD_SIZE=5" \
  OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=5 "$PARAMD" launch --world 4 --servers 1 --rendezvous "$TMP/r"
bad "rank 4 \(--rank\) is outside a world of 4 \(--world\)" \
  "$PARAMD" launch --rank 4 --world 4 --servers 1 --rendezvous "$TMP/r"
bad "no rank: run it under a launcher" "$PARAMD" launch --servers 1 --rendezvous "$TMP/r"
bad "--port 7070 but on which host\? Open MPI tells no host list: give --coordinator-host HOST" \
  OMPI_COMM_WORLD_RANK=1 OMPI_COMM_WORLD_SIZE=3 "$PARAMD" launch --servers 1 --port 7070
bad "how do the processes find the coordinator\?" \
  OMPI_COMM_WORLD_RANK=1 OMPI_COMM_WORLD_SIZE=3 "$PARAMD" launch --servers 1
bad "rank 0 \(the coordinator\) runs on host .*, but the others will dial 192\.0\.2\.77:7070, which is not this host" \
  "$PARAMD" launch --rank 0 --world 3 --servers 1 --coordinator 192.0.2.77:7070
bad "listening on 0\.0\.0\.0, which other machines reach, without a cluster secret: .* Give --secret-file FILE" \
  -u PARAMD_SECRET_FILE OMPI_COMM_WORLD_RANK=2 OMPI_COMM_WORLD_SIZE=4 "$PARAMD" launch --servers 1 --rendezvous "$TMP/r"
pass "worlds that do not fit, no way to meet, no secret beyond loopback: refused at once, saying why"

# 3. Plain launches meeting through a rendezvous file.
run4() { # run4 FILE ENV...: 4 ranks (1 server, 2 workers) of the toy, sync
  local f=$1 r pids=(); shift
  for r in 0 1 2 3; do
    env "$@" "$PARAMD" launch --rank $r --world 4 --servers 1 --rendezvous "$f" \
      --listen-host 127.0.0.1 -- "$TOY" --consistency sync --sleep-ms 0 >"$TMP/l.$r" 2>&1 &
    pids+=($!); PIDS+=($!)
  done
  for r in 0 1 2 3; do wait "${pids[$r]}" || { cat "$TMP/l.$r"; fail "rank $r failed"; }; done
}
run4 "$TMP/rdv"
expect_line "$TMP/l.2" "^final params \(sync, mean\):( 100\.0){10}\$"
expect_line "$TMP/l.0" "rank 0 of 4 \(--rank/--world\): coordinator of 1 servers and 2 workers, listening on 127\.0\.0\.1:[0-9]+, reachable at 127\.0\.0\.1:[0-9]+"
expect_line "$TMP/l.1" "rank 1 of 4 \(--rank/--world\) on host .*: server 0, listening on 127\.0\.0\.1:[0-9]+, advertised as 127\.0\.0\.1:"
[ -e "$TMP/rdv" ] && fail "the rendezvous file outlived the cluster"
echo "127.0.0.1:9 pmix-other-job" >"$TMP/rdv2"
run4 "$TMP/rdv2" PMIX_NAMESPACE=this-job
expect_line "$TMP/l.2" "^final params \(sync, mean\):( 100\.0){10}\$"
pass "4 plain launches through a rendezvous file; another job's file is not taken"

# 4. A worker that never comes.
start_coordinator 1 3 --startup-timeout-ms 3000 --report-ms 300
start_servers 1
for r in 0 1; do
  PARAMD_COORDINATOR=$COORD PARAMD_RANK=$r "$TOY" --sleep-ms 0 >"$TMP/miss.$r" 2>&1 &
  PIDS+=($!); MW[$r]=$!
done
wait "$COORD_PID" && fail "the coordinator exited 0 without its cluster"
for r in 0 1; do wait "${MW[$r]}" && fail "worker $r exited 0 without its cluster"; done
wait "${SERVER_PIDS[0]}" && fail "the server exited 0 without its cluster"
expect_line "$TMP/coordinator.log" "after [0-9.]+ s still waiting for worker 2 of 3 to register \(giving up in [0-9]+ s\)"
why="the cluster did not assemble within 3\.0 s \(--startup-timeout-ms\): worker 2 of 3 never registered"
expect_line "$TMP/coordinator.log" "error: $why"
expect_line "$TMP/server.0.log" "the coordinator ended the cluster: $why"
expect_line "$TMP/miss.0" "paramd_barrier\(c\): coordinator $COORD: $why"
pass "a worker missing at start-up: named (--report-ms 300), the cluster ended at 3 s with the reason everywhere"

# 5. torchrun's variables.
start_coordinator 1 2
start_servers 1
RANK=0 WORLD_SIZE=3 PARAMD_COORDINATOR=$COORD "$TOY" >"$TMP/ws" 2>&1 && fail "WORLD_SIZE=3 against 2 workers accepted"
expect_line "$TMP/ws" "WORLD_SIZE=3 \(the launcher's world size\) but the cluster at $COORD has 2 workers \(its coordinator's --workers\): start 2 worker processes"
for r in 0 1; do
  RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r PARAMD_COORDINATOR=$COORD "$TOY" --sleep-ms 0 >"$TMP/tr.$r" 2>&1 &
  PIDS+=($!); TW[$r]=$!
done
for r in 0 1; do wait "${TW[$r]}" || { cat "$TMP/tr.$r"; fail "torchrun-style worker $r"; }; done
expect_line "$TMP/tr.0" "^final params \(async, mean\):( 200\.0){10}\$"
pass "torchrun's RANK/WORLD_SIZE: ranks taken, a wrong WORLD_SIZE refused with both numbers"

# 6. Host identity.
start_coordinator 1 2
PARAMD_HOST_ID=host-a "$PARAMD" server --coordinator "$COORD" >>"$TMP/server.id.log" 2>&1 &
PIDS+=($!)
spin() { # spin RANK HOST_ID: an async worker pushing in a loop, once it pushed
  mkfifo "$TMP/spin.$1"
  PARAMD_COORDINATOR=$COORD PARAMD_RANK=$1 PARAMD_HOST_ID=$2 \
    "$BUILD/tests/tool_worker" spin >"$TMP/spin.$1" 2>"$TMP/spin.$1.err" &
  PIDS+=($!)
  read -r -t 20 line <"$TMP/spin.$1" || fail "spinner $1: $(cat "$TMP/spin.$1.err")"
  cat "$TMP/spin.$1" >/dev/null &
}
spin 0 host-a
spin 1 host-b
"$PARAMD" stats --coordinator "$COORD" >"$TMP/stats" 2>&1 || fail "stats: $(cat "$TMP/stats")"
expect_line "$TMP/stats" "^  worker connections tcp 1 shm 1 "
expect_line "$TMP/stats" "^  connection worker 0 shm\$"
expect_line "$TMP/stats" "^  connection worker 1 tcp from 127\.0\.0\.1:[0-9]+\$"
start_coordinator 1 1
PARAMD_HOST_ID=host-a "$PARAMD" server --coordinator "$COORD" >>"$TMP/server.id2.log" 2>&1 &
PIDS+=($!)
PARAMD_COORDINATOR=$COORD PARAMD_RANK=0 PARAMD_HOST_ID=host-b PARAMD_TRANSPORT=shm \
  "$TOY" >"$TMP/noshm" 2>&1 && fail "transport=shm to another host's server accepted"
expect_line "$TMP/noshm" "server 0 \(127\.0\.0\.1:[0-9]+\) is on another host \(host id host-a; this worker's is host-b\): transport=shm needs every server on this host"
pass "shared memory only within a host id, TCP across; paramd stats names each connection's transport"

# 7. --replicas and --elastic.
out=$(dry OMPI_COMM_WORLD_RANK=4 OMPI_COMM_WORLD_SIZE=7 --servers 2 --replicas 2 --elastic \
        --coordinator node1:7070) || fail "$out"
[ "$out" = "rank 4 of 7 (Open MPI, OMPI_COMM_WORLD_RANK): server; 2 servers x 2 copies, 2 workers, elastic; coordinator at node1:7070; listen on 0.0.0.0" ] \
  || fail "replicas, rank 4: $out"
out=$(dry OMPI_COMM_WORLD_RANK=5 OMPI_COMM_WORLD_SIZE=7 --servers 2 --replicas 2 \
        --coordinator node1:7070) || fail "$out"
[ "$out" = "rank 5 of 7 (Open MPI, OMPI_COMM_WORLD_RANK): worker 0 of 2; 2 servers x 2 copies, 2 workers; coordinator at node1:7070; listen on 0.0.0.0" ] \
  || fail "replicas, rank 5: $out"
bad "a world of 5 \(OMPI_COMM_WORLD_SIZE\) is too small for 1 coordinator \+ 4 servers \(--servers 2 x --replicas 2\) \+ at least 1 worker: start at least 6 processes" \
  OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=5 "$PARAMD" launch --servers 2 --replicas 2 --port 7070 --coordinator-host h
bad "a world of 6 \(SLURM_NTASKS\) is not 1 coordinator \+ 4 servers \+ 2 workers \(--servers x --replicas, --workers\) = 7: start 7 processes" \
  SLURM_PROCID=1 SLURM_NTASKS=6 "$PARAMD" launch --servers 2 --replicas 2 --workers 2 --port 7070 --coordinator-host h
bad "--replicas 8: at most 7 copies of a shard with --elastic \(a shard moving in takes one more\)" \
  "$PARAMD" launch --rank 0 --world 20 --servers 1 --replicas 8 --elastic --rendezvous "$TMP/r"
bad "--replicas '9' is not a number in 1\.\.8" \
  "$PARAMD" launch --rank 0 --world 20 --servers 1 --replicas 9 --rendezvous "$TMP/r"
pass "--replicas: roles by S x R, worlds that do not fit say so; --replicas 8 with --elastic and 9 refused"

N=6000 # (room for the drain and the kill before the toys end, under the sanitizers too)
lr() { # lr RANK HOST-ID: one of 7 plain launches (2 servers x 2 copies, elastic, 2 workers)
  "$PARAMD" launch --rank "$1" --world 7 --servers 2 --replicas 2 --elastic \
    --rendezvous "$TMP/rdv7" --listen-host 127.0.0.1 --host-id "$2" \
    -- "$TOY" --consistency async --iters $N --sleep-ms 1 >"$TMP/r7.$1" 2>&1 &
  R7[$1]=$!; PIDS+=($!)
}
lr 0 host-c
wait_line "$TMP/r7.0" "reachable at 127\.0\.0\.1:[0-9]+"
C7=$(sed -nE 's/.*reachable at (127\.0\.0\.1:[0-9]+).*/\1/p' "$TMP/r7.0")
# the servers one by one, so that which is whose copy is known: rank 1
# (host-a) and rank 2 (host-b) serve; rank 3 (host-a) must copy rank 2's
# slot, rank 4 (host-b) rank 1's
lr 1 host-a; wait_line "$TMP/r7.1" "on host host-a: server [01], listening"
lr 2 host-b; wait_line "$TMP/r7.2" "on host host-b: server [01], listening"
s1=$(sed -nE 's/.*: server ([01]), listening.*/\1/p' "$TMP/r7.1")
s2=$(sed -nE 's/.*: server ([01]), listening.*/\1/p' "$TMP/r7.2")
lr 3 host-a; wait_line "$TMP/r7.3" "on host host-a: copy 1 of server $s2, listening" 30
lr 4 host-b; wait_line "$TMP/r7.4" "on host host-b: copy 1 of server $s1, listening" 30
expect_line "$TMP/r7.0" "registered as copy 1 of slot $s2; its primary \(127\.0\.0\.1:[0-9]+\) seeds it \(hosts host-a and host-b\)"
expect_line "$TMP/r7.0" "registered as copy 1 of slot $s1; its primary \(127\.0\.0\.1:[0-9]+\) seeds it \(hosts host-b and host-a\)"
lr 5 host-w; lr 6 host-w
frontier_reaches "$C7" $((N / 5)) "$TMP/r7.0"
"$PARAMD" server --coordinator "$C7" --join --listen 127.0.0.1:0 --host-id host-d >"$TMP/sb7" 2>&1 &
SB7=$!; PIDS+=($!)
wait_line "$TMP/r7.0" "the standby at 127\.0\.0\.1:[0-9]+ waits"
"$PARAMD" drain --coordinator "$C7" --server "$s2" >"$TMP/drain7" 2>&1 || { cat "$TMP/drain7"; fail "paramd drain --server $s2"; }
expect_line "$TMP/drain7" "server $s2's shard moved from 127\.0\.0\.1:[0-9]+ to 127\.0\.0\.1:[0-9]+ in [0-9]+ ms .*; no update was lost"
wait "${R7[2]}" || { cat "$TMP/r7.2"; fail "the drained server (rank 2) exited non-zero"; }
k=$(( $(frontier "$C7") + 200 ))
[ $k -lt $((N * 2 / 3)) ] || fail "the toys were nearly done ($k of $N) before the primary could be killed: give them more --iters"
frontier_reaches "$C7" $k "$TMP/r7.0"
kill -KILL "${R7[1]}"; wait "${R7[1]}" 2>/dev/null
for r in 5 6; do wait "${R7[$r]}" || { cat "$TMP/r7.$r" "$TMP/r7.0"; fail "worker rank $r exited non-zero"; }; done
mapfile -t V < <(values "$TMP/r7.5")
for i in $(seq 0 9); do
  [ "${V[$i]}" = $((2 * N)) ] || fail "element $i is ${V[$i]}, expected $((2 * N)) (every acknowledged push once)"
done
wait "${R7[0]}" || { cat "$TMP/r7.0"; fail "the coordinator (rank 0) exited non-zero after a move and a promotion"; }
expect_line "$TMP/r7.0" "server $s1 lost \(127\.0\.0\.1:[0-9]+\): its copy at 127\.0\.0\.1:[0-9]+ serves the slot after [0-9]+ ms"
wait "${R7[4]}" || { cat "$TMP/r7.4"; fail "the promoted copy (rank 4) exited non-zero"; }
wait "$SB7" || { cat "$TMP/sb7"; fail "the server that took the drained shard exited non-zero"; }
pass "7 plain launches, --replicas 2 --elastic: copies on the other host; a join + paramd drain, then a primary SIGKILLed, under the async toy: every element exactly $((2 * N)), the coordinator exits 0"
