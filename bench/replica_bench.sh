#!/usr/bin/env bash
# What replicated shards cost and what they save (docs/durability.md,
# "Replicated shards"), each figure against the same thing without copies
# measured in the same run, rounds interleaved (the machine is shared):
#   1. push and push+pull throughput of `paramd bench` (S=2, W=2, sizes
#      4K, 1M, 16M, over TCP and shared memory) and 4 KiB push latency,
#      --replicas 2 over --replicas 1: the median ratio over the rounds;
#   2. CNN training samples/s (`paramd train --model cnn`, sync, W=2,
#      S=1), --replicas 2 over 1;
#   3. slot 0's primary SIGKILLed under `paramd train --replicas 2` (mlp,
#      sync, adam, W=2, S=2): seconds from the SIGKILL to the first step
#      completed after it (the frontier of the table, which the servers
#      count, moving two clocks past where it was), the run's wall time
#      against the same run without a kill, and whether the final weights
#      are bit-identical to a run without copies (they must be).
#
#   bash bench/replica_bench.sh [BUILD_DIR] [ROUNDS]
set -eu
B=${1:-build}; ROUNDS=${2:-3}
P=$B/paramd
T=$(mktemp -d /tmp/paramd-replica-bench.XXXXXX)
trap 'pkill -KILL -s "${SID:-0}" 2>/dev/null; rm -rf "$T"' EXIT
# the clusters' secret, so that paramd stats can ask the one of part 3
export PARAMD_SECRET_FILE=$T/secret
source "$(dirname "$0")/lib.sh" # now, med, frontier
echo "# replica_bench: $(date -u '+%F %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), tree $(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo '?')"

# --- 1. paramd bench ---
echo "## 1. paramd bench --servers 2 --workers 2 --ops push,pushpull,latency --sizes 4K,1M,16M --seconds 0.5, --replicas 2 against 1"
for ((r = 1; r <= ROUNDS; r++)); do
  for R in 1 2; do
    "$P" bench --json --servers 2 --workers 2 --ops push,pushpull,latency --sizes 4K,1M,16M \
      --seconds 0.5 --replicas $R 2>/dev/null | sed "s/^/$r /" >>"$T/bench.$R"
  done
done
# round R1-value R2-value per (transport, op, size)
for tr in tcp shm; do
  for op in push pushpull; do
    for size in 4096 1048576 16777216; do
      val() { grep "\"transport\":\"$tr\",\"op\":\"$op\"" "$T/bench.$1" | grep "\"size\":$size," |
                sed -nE 's/^([0-9]+) .*"bytes_per_s":([0-9.e+]+).*/\1 \2/p'; }
      join <(val 1) <(val 2) >"$T/pair"
      a=$(awk '{ print $2 / 1e9 }' "$T/pair" | med); b=$(awk '{ print $3 / 1e9 }' "$T/pair" | med)
      q=$(awk '{ print $3 / $2 }' "$T/pair" | med)
      printf "  %-3s %-8s %8s B   1 copy %6.2f GB/s   2 copies %6.2f GB/s   ratio %.2f (median of %d rounds)\n" \
        "$tr" "$op" "$size" "$a" "$b" "$q" "$(wc -l <"$T/pair")"
    done
  done
  lat() { grep '"bench":"latency"' "$T/bench.$1" | grep "\"transport\":\"$tr\"" | grep '"op":"push"' |
            sed -nE 's/^([0-9]+) .*"p50_us":([0-9.e+]+).*/\1 \2/p'; }
  join <(lat 1) <(lat 2) >"$T/pair"
  if [ -s "$T/pair" ]; then
    printf "  %-3s 4 KiB push p50   1 copy %6.1f us        2 copies %6.1f us        ratio %.2f\n" "$tr" \
      "$(awk '{ print $2 }' "$T/pair" | med)" "$(awk '{ print $3 }' "$T/pair" | med)" \
      "$(awk '{ print $3 / $2 }' "$T/pair" | med)"
  fi
done

# --- 2. CNN samples/s ---
C=(--model cnn --workers 2 --servers 1 --steps "${CNN_STEPS:-300}" --limit 4000 --quiet --eval-every 1000000)
echo "## 2. paramd train ${C[*]}, --replicas 2 against 1"
for ((r = 1; r <= ROUNDS; r++)); do
  for R in 1 2; do
    "$P" train "${C[@]}" --replicas $R --out "$T/cnn$R" >"$T/cnn.log" 2>&1
    sps=$(sed -nE 's/^final: .* ([0-9.]+) samples\/s .*/\1/p' "$T/cnn.log" | tail -1)
    echo "$r $sps" >>"$T/cnn.$R"
  done
done
join "$T/cnn.1" "$T/cnn.2" >"$T/pair"
while read -r r a b; do
  printf "  round %d  1 copy %7.0f samples/s   2 copies %7.0f samples/s   ratio %.2f\n" "$r" "$a" "$b" \
    "$(awk -v a="$a" -v b="$b" 'BEGIN { print b / a }')"
done <"$T/pair"
printf "  median ratio %.2f\n" "$(awk '{ print $3 / $2 }' "$T/pair" | med)"

# --- 3. a server SIGKILLed under --replicas 2 ---
O=(--model mlp --workers 2 --servers 2 --steps "${STEPS:-3000}" --limit 4000 --rule adam --lr 0.001
   --seed 3 --quiet)
echo "## 3. paramd train ${O[*]} --replicas 2: slot 0's primary SIGKILLed a third of the way"
for ((r = 1; r <= ROUNDS; r++)); do
  t0=$(now)
  "$P" train "${O[@]}" --save-params "$T/ref.bin" --out "$T/ref" >"$T/ref.log" 2>&1
  t_ref=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')
  t0=$(now)
  setsid "$P" train "${O[@]}" --replicas 2 --save-params "$T/k.bin" --out "$T/k" >"$T/k.log" 2>&1 &
  SID=$!
  alive() { kill -0 $SID 2>/dev/null || { cat "$T/k.log"; echo "round $r: the run ended early"; exit 1; }; }
  until CO=$(sed -nE 's/.*coordinator listening on (127\.0\.0\.1:[0-9]+).*/\1/p' "$T/k.log" | head -1); [ -n "$CO" ]; do
    alive; sleep 0.02
  done
  until f=$(frontier "$CO"); [ -n "$f" ] && [ "$f" -ge $((${STEPS:-3000} / 3)) ]; do alive; sleep 0.02; done
  # the primary of slot 0: its address from paramd status, its pid from
  # the socket listening there
  addr=$("$P" status --coordinator "$CO" | sed -nE 's/^  server 0 at ([^:]+:[0-9]+): .*/\1/p')
  victim=$(ss -ltnpH "sport = :${addr##*:}" | sed -nE 's/.*pid=([0-9]+).*/\1/p' | head -1)
  [ -n "$victim" ] || { echo "round $r: no process serves slot 0"; exit 1; }
  f0=$(frontier "$CO")
  kill -KILL "$victim"; t_kill=$(now)
  until f=$(frontier "$CO"); [ -n "$f" ] && [ "$f" -ge $((f0 + 2)) ]; do alive; sleep 0.005; done
  t_on=$(now)
  wait $SID || { cat "$T/k.log"; echo "round $r: the run failed"; exit 1; }
  t_all=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')
  same=$(cmp -s "$T/ref.bin" "$T/k.bin" && echo "bit-identical" || echo "DIFFERENT")
  ms=$(sed -nE 's/.*serves the slot after ([0-9]+) ms.*/\1/p' "$T/k.log" | head -1)
  awk -v r="$r" -v k="$t_kill" -v on="$t_on" -v f0="$f0" -v ref="$t_ref" -v all="$t_all" \
      -v same="$same" -v ms="${ms:--}" 'BEGIN {
    printf "  round %d  kill -> a step completed %.3f s (promotion %s ms)  at clock %d  " \
           "wall %.1f s against %.1f s without copies or kill (x%.2f)  weights %s\n",
           r, on - k, ms, f0, all, ref, all / ref, same }'
done
