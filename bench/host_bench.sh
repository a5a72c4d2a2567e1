#!/usr/bin/env bash
# A host that joins a running cluster, takes its share of every table and
# leaves again (docs/durability.md, "Hosts that serve several shards"),
# against the same training with nothing moved, in the same round, rounds
# interleaved (the machine is shared).  Two `paramd train --join` workers
# (mlp, sync, adam) on a cluster of 8 shards, host A serving all of them
# (`paramd server --shards 8 --host-id hostA`):
#   ref   nothing moves;
#   host  host B (`paramd server --join --shards 8 --host-id hostB`) is
#         started a third of the way and takes 4 of the 8 shards (4 moves
#         the coordinator makes, one after the other), then `paramd drain
#         --host hostB` two thirds of the way gives them back to host A's
#         emptied places (4 more moves).  Printed: seconds from B's start
#         to its 4th shard served, the host drain's own time (its line),
#         the wall time against ref's, and whether the final weights are
#         bit-identical to ref's (they must be: nothing lost or applied
#         twice, and a sync step's sum does not depend on where a shard is).
# Both hosts are processes of this machine (host ids, not machines): the
# moves cross loopback, and the 2 cores run both hosts' servers.
#
#   bash bench/host_bench.sh [BUILD_DIR] [ROUNDS]
set -eu
B=${1:-build}; ROUNDS=${2:-3}
P=$B/paramd
T=$(mktemp -d /tmp/paramd-host-bench.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done; rm -rf "$T"' EXIT
export PARAMD_SECRET_FILE=$T/secret
source "$(dirname "$0")/lib.sh" # now, med, frontier
STEPS=${STEPS:-3000}
O=(--model mlp --steps "$STEPS" --limit 4000 --rule adam --lr 0.001 --seed 3 --quiet)
alive() { kill -0 "$W0" 2>/dev/null || { cat "$T/$1.w0"; echo "$1: the run ended early"; exit 1; }; }
# cluster NAME: coordinator (8 shards, 2 workers, --elastic), host A's 8
# places, the two workers; sets CO, W0, W1, CP, AP
cluster() {
  rm -rf "$T/$1".*
  "$P" coordinator --servers 8 --workers 2 --elastic >"$T/$1.co" 2>&1 &
  CP=$!; PIDS+=($!)
  until CO=$(sed -nE 's/.*listening on (127\.0\.0\.1:[0-9]+).*/\1/p' "$T/$1.co"); [ -n "$CO" ]; do
    kill -0 $CP 2>/dev/null || { cat "$T/$1.co"; exit 1; }; sleep 0.02
  done
  "$P" server --coordinator "$CO" --shards 8 --host-id hostA >"$T/$1.a" 2>&1 &
  AP=$!; PIDS+=($!)
  PARAMD_COORDINATOR=$CO PARAMD_RANK=0 "$P" train --join "${O[@]}" --out "$T/$1.out" \
    --save-params "$T/$1.bin" >"$T/$1.w0" 2>&1 &
  W0=$!; PIDS+=($!)
  PARAMD_COORDINATOR=$CO PARAMD_RANK=1 "$P" train --join "${O[@]}" >"$T/$1.w1" 2>&1 &
  W1=$!; PIDS+=($!)
}
finish() { # NAME [PID...]: every process of the cluster (and PIDs) exits 0
  local n=$1 p rc f; shift
  for p in $W0 $W1 $CP $AP "$@"; do
    wait "$p" || { rc=$?; for f in co a w0 w1 b; do [ -f "$T/$n.$f" ] && tail -n 5 "$T/$n.$f"; done
                   echo "$n: process $p exited $rc"; exit 1; }
  done
}
echo "# host_bench: $(date -u '+%F %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), tree $(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "## 2 x paramd train --join ${O[*]} on 8 shards of host A: nothing moved, and host B joining a third of the way (--shards 8), drained (--host) two thirds of the way"
for ((r = 1; r <= ROUNDS; r++)); do
  t0=$(now); cluster ref; finish ref
  t_ref=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')
  t0=$(now); cluster host
  until f=$(frontier "$CO"); [ -n "$f" ] && [ "$f" -ge $((STEPS / 3)) ]; do alive host; sleep 0.02; done
  t_j=$(now)
  "$P" server --coordinator "$CO" --join --shards 8 --host-id hostB >"$T/host.b" 2>&1 &
  BP=$!; PIDS+=($!)
  until [ "$(grep -c "which joined from a host with fewer shards" "$T/host.co")" -ge 4 ]; do alive host; sleep 0.005; done
  t_in=$(now)
  until f=$(frontier "$CO"); [ -n "$f" ] && [ "$f" -ge $((2 * STEPS / 3)) ]; do alive host; sleep 0.02; done
  "$P" drain --coordinator "$CO" --host hostB >"$T/host.drain" 2>&1 || { cat "$T/host.drain"; exit 1; }
  finish host "$BP"
  t_all=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')
  same=$(cmp -s "$T/ref.bin" "$T/host.bin" && echo "bit-identical" || echo "DIFFERENT")
  dr=$(sed -nE "s/.*shards moved to other hosts in ([0-9]+) ms.*/\1/p" "$T/host.drain")
  mv=$(sed -nE "s/.*which joined from a host with fewer shards, in ([0-9]+) ms.*/\1/p" "$T/host.co" | sort -n | tr '\n' ' ')
  echo "$r $t_ref $t_all" >>"$T/walls"
  awk -v r="$r" -v ref="$t_ref" -v all="$t_all" -v j="$t_j" -v in_="$t_in" -v dr="$dr" -v mv="$mv" \
      -v same="$same" 'BEGIN {
    printf "  round %d  wall: ref %.1f s, host joined and drained %.1f s (x%.2f, weights %s)\n" \
           "           host B serving 4 of 8 shards %.3f s after its start (moves of %s ms); drain --host: 4 shards back in %s ms\n",
           r, ref, all, all / ref, same, in_ - j, mv, dr }'
done
printf "  median wall ratio: x%.2f\n" "$(awk '{ print $3 / $2 }' "$T/walls" | med)"
