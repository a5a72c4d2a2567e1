#!/usr/bin/env bash
# Quality and speed of paramd train, against the same model trained in one
# process with no parameter server (bench/single_train): test accuracy,
# wall time and samples/s for mlp and cnn, sync and async, W = 1, 2, 4.
# Prints a markdown table; the cost of the server is 1 - (samples/s of the
# paramd run with W=1) / (samples/s of the single process), both on one
# core (BLAS threads = 1), measured in the same run.
#
#   bash bench/train_bench.sh [BUILD_DIR] [OUT_DIR] [MLP_EPOCHS] [CNN_EPOCHS]
set -eu
B=${1:-build}; OUT=${2:-runs/train-bench}; ME=${3:-10}; CE=${4:-1}
mkdir -p "$OUT"
row() { # label, run dir or log
  printf '| %s | %s | %.2f%% | %.1f | %.0f |\n' "$1" "$2" "$3" "$4" "$5"
}
echo "| model | run | test accuracy | wall (s) | samples/s |"
echo "| --- | --- | ---: | ---: | ---: |"
for model in mlp cnn; do
  E=$ME; extra=""
  LR=0.05; [ $model = cnn ] && { E=$CE; LR=0.03; }
  extra="--lr $LR"
  log=$OUT/single-$model.log
  "$B/bench/single_train" --model $model --epochs $E --threads 1 --lr $LR >"$log" 2>&1
  acc=$(sed -n 's/.*test_acc=\([0-9.]*\).*/\1/p' "$log" | tail -1)
  wall=$(sed -n 's/.*wall_s=\([0-9.]*\).*/\1/p' "$log" | tail -1)
  sps=$(sed -n 's/.*samples_per_s=\([0-9.]*\).*/\1/p' "$log" | tail -1)
  row $model "single process, no server" "$(awk -v a="$acc" 'BEGIN{print a*100}')" "$wall" "$sps"
  for cons in sync async; do
    for W in 1 2 4; do
      d=$OUT/$model-$cons-w$W
      "$B/paramd" train --model $model --consistency $cons --workers $W --servers 1 \
        --epochs $E --threads 1 --quiet $extra --out "$d" >"$d.log" 2>&1 || { echo "FAILED: $d"; continue; }
      read -r acc wall sps < <(sed -n 's/.*"test_acc": \([0-9.]*\).*"wall_s": \([0-9.]*\), "samples_per_s": \([0-9.]*\).*/\1 \2 \3/p' "$d/run.json")
      row $model "paramd $cons W=$W" "$(awk -v a="$acc" 'BEGIN{print a*100}')" "$wall" "$sps"
    done
  done
done
