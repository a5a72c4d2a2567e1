#!/usr/bin/env bash
# The trade-off of consistency models with a straggler: the same model on
# Fashion-MNIST with W = 4 workers, worker 3 three times slower, under
# sync, sync with 1 backup worker, ssp:2 and async.  Writes one plot of
# test accuracy against wall time for the four runs and a table of the time
# each took to reach a target accuracy.
#
#   [EXTRA_ARGS="--limit N ..."] bash bench/stragglers.sh [BUILD_DIR] [OUT_DIR] [MODEL] [EPOCHS] [TARGET]
set -eu
B=${1:-build}; OUT=${2:-runs/stragglers}; MODEL=${3:-mlp}; EPOCHS=${4:-3}; TARGET=${5:-0.84}
mkdir -p "$OUT"
common=(--model "$MODEL" --workers 4 --servers 2 --epochs "$EPOCHS" --straggle 3:3 --quiet ${EXTRA_ARGS:-}
        --eval-every "${EVAL_EVERY:-25}" --seed 1)
run() { # name, extra args
  local name=$1; shift
  echo "== $name: paramd train ${common[*]} $*"
  "$B/paramd" train "${common[@]}" "$@" --out "$OUT/$name" | grep final
  sed -i "s/\"label\": \"[^\"]*\"/\"label\": \"$name\"/" "$OUT/$name/run.json"
}
run sync --consistency sync
run sync-backup1 --consistency sync --backup 1
run ssp2 --consistency ssp:2
run async --consistency async
"$B/paramd" plot "$OUT/sync" "$OUT/sync-backup1" "$OUT/ssp2" "$OUT/async" \
  --title "$MODEL, W=4, worker 3 slowed 3x" --out "$OUT/stragglers.svg"
echo
printf '| run | time to %.0f%% test accuracy (s) | final accuracy | wall (s) |\n' "$(awk -v t="$TARGET" 'BEGIN{print t*100}')"
echo "| --- | ---: | ---: | ---: |"
for name in sync sync-backup1 ssp2 async; do
  awk -F, -v t="$TARGET" -v n="$name" '
    NR > 1 { if (!hit && $7 >= t) { hit = $1 }; last = $1; acc = $7 }
    END { printf "| %s | %s | %.2f%% | %.1f |\n", n, hit ? sprintf("%.1f", hit) : "not reached", acc * 100, last }' \
    "$OUT/$name/metrics.csv"
done
