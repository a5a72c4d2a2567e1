#!/usr/bin/env bash
# What moving a shard costs (docs/durability.md, "Servers that join and
# leave"), against the same run without --elastic in the same round,
# rounds interleaved (the machine is shared): `paramd train` (mlp, sync,
# adam, W=2, S=2) three ways:
#   ref      without --elastic;
#   elastic  with --elastic, nothing moved (the price of being ready);
#   drain    with --elastic, a server started with --join a third of the
#            way, then `paramd drain --server 0`: seconds from the drain's
#            start to the first step completed after it returned (the
#            table's frontier, which the servers count, two clocks past
#            where it was), the move's own figures (seeding, handover), and
#            whether the final weights are bit-identical to ref's (they
#            must be: no update is lost or applied twice).
#
#   bash bench/move_bench.sh [BUILD_DIR] [ROUNDS]
set -eu
B=${1:-build}; ROUNDS=${2:-3}
P=$B/paramd
T=$(mktemp -d /tmp/paramd-move-bench.XXXXXX)
trap 'pkill -KILL -s "${SID:-0}" 2>/dev/null; kill -KILL ${JP:-} 2>/dev/null; rm -rf "$T"' EXIT
export PARAMD_SECRET_FILE=$T/secret
source "$(dirname "$0")/lib.sh" # now, med, frontier
STEPS=${STEPS:-3000}
O=(--model mlp --workers 2 --servers 2 --steps "$STEPS" --limit 4000 --rule adam --lr 0.001
   --seed 3 --quiet)
echo "# move_bench: $(date -u '+%F %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), tree $(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "## paramd train ${O[*]}: without --elastic, with it, and with a drain a third of the way"
for ((r = 1; r <= ROUNDS; r++)); do
  t0=$(now)
  "$P" train "${O[@]}" --save-params "$T/ref.bin" --out "$T/ref" >"$T/ref.log" 2>&1
  t_ref=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')
  t0=$(now)
  "$P" train "${O[@]}" --elastic --save-params "$T/el.bin" --out "$T/el" >"$T/el.log" 2>&1
  t_el=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')
  t0=$(now)
  setsid "$P" train "${O[@]}" --elastic --save-params "$T/d.bin" --out "$T/d" >"$T/d.log" 2>&1 &
  SID=$!
  alive() { kill -0 $SID 2>/dev/null || { cat "$T/d.log"; echo "round $r: the run ended early"; exit 1; }; }
  until CO=$(sed -nE 's/.*coordinator listening on (127\.0\.0\.1:[0-9]+).*/\1/p' "$T/d.log" | head -1); [ -n "$CO" ]; do
    alive; sleep 0.02
  done
  "$P" server --coordinator "$CO" --join >"$T/join.log" 2>&1 &
  JP=$!
  until f=$(frontier "$CO"); [ -n "$f" ] && [ "$f" -ge $((STEPS / 3)) ]; do alive; sleep 0.02; done
  f0=$(frontier "$CO"); t_d=$(now)
  "$P" drain --coordinator "$CO" --server 0 >"$T/drain.out" 2>&1 || { cat "$T/drain.out"; exit 1; }
  until f=$(frontier "$CO"); [ -n "$f" ] && [ "$f" -ge $((f0 + 2)) ]; do alive; sleep 0.005; done
  t_on=$(now)
  wait $SID || { cat "$T/d.log"; echo "round $r: the run failed"; exit 1; }
  wait $JP 2>/dev/null || true
  t_all=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')
  same_el=$(cmp -s "$T/ref.bin" "$T/el.bin" && echo "bit-identical" || echo "DIFFERENT")
  same=$(cmp -s "$T/ref.bin" "$T/d.bin" && echo "bit-identical" || echo "DIFFERENT")
  mv=$(sed -nE 's/.* in ([0-9]+) ms \(seeding ([0-9]+) ms, handover ([0-9]+) ms.*/\1 \2 \3/p' "$T/drain.out")
  echo "$r $t_ref $t_el $t_all" >>"$T/walls"
  awk -v r="$r" -v d="$t_d" -v on="$t_on" -v f0="$f0" -v ref="$t_ref" -v el="$t_el" -v all="$t_all" \
      -v same="$same" -v same_el="$same_el" -v mv="$mv" 'BEGIN {
    split(mv, m, " ")
    printf "  round %d  wall: ref %.1f s, --elastic %.1f s (x%.2f, weights %s), drained %.1f s (x%.2f, weights %s)\n" \
           "           drain at clock %d -> a step completed %.3f s (the move %s ms: seeding %s ms, handover %s ms)\n",
           r, ref, el, el / ref, same_el, all, all / ref, same, f0, on - d, m[1], m[2], m[3] }'
done
printf "  median wall ratio: --elastic x%.2f, drained x%.2f\n" \
  "$(awk '{ print $3 / $2 }' "$T/walls" | med)" "$(awk '{ print $4 / $2 }' "$T/walls" | med)"
