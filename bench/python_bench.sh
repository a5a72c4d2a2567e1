#!/usr/bin/env bash
# The seed's SimpleCNN from Python on paramd (examples/python/cnn.py),
# against the same model in C (`paramd train --model cnn`) and against
# PyTorch DistributedDataParallel over gloo (bench/ddp_cnn.py), all with
# W = 2 workers on this machine, plus the ceiling: the same 2 PyTorch
# processes training without any communication (ddp_cnn.py --comm off).
#
#   bash bench/python_bench.sh [BUILD_DIR] [ROUNDS] [STEPS]
#
# Every run: batch 64 per worker, plain SGD with lr 0.03 x W on the mean of
# the 2 gradients (async: each gradient on arrival), one BLAS/torch thread
# per worker, 1 server, one epoch (60,000 samples over both workers: 468
# steps per worker) unless STEPS is given; samples/s count the training
# loop only (barrier to barrier), accuracy is the final weights' on the
# 10,000 test images.  The configurations run interleaved, ROUNDS times
# [2], so that every configuration sees the machine's load of every
# moment; the summary gives each one's median and its ratio to DDP's.
# A benchmark, never a test.
set -eu
B=${1:-build}; ROUNDS=${2:-2}; STEPS=${3:-0}
SRC=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "$B" && pwd)
PY=$(sed -n 's/^PARAMD_PYTHON:[A-Z]*=//p' "$B/CMakeCache.txt")
PY=${PY:-/usr/bin/python3}
export PYTHONPATH=$SRC/python PARAMD_LIBRARY=$B/libparamd.so PARAMD_PROGRAM=$B/paramd
OUT=$(mktemp -d /tmp/paramd-pybench.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
len=(); [ "$STEPS" -gt 0 ] && len=(--steps "$STEPS")
plen=(--epochs 1); [ "$STEPS" -gt 0 ] && plen=(--steps "$STEPS")

configs=("paramd-train sync" "python-paramd sync" "ddp-gloo" "paramd-train async"
         "python-paramd async" "comm-off")
run() { # config -> "accuracy% samples/s" on stdout
  local log=$OUT/run.log
  case "$1" in
    "paramd-train "*)
      "$B/paramd" train --model cnn --consistency "${1#* }" --workers 2 --servers 1 \
        --threads 1 --lr 0.03 "${plen[@]}" --eval-every 1000000 --quiet \
        --out "$OUT/train" >"$log" 2>&1
      sed -n 's/.*"test_acc": \([0-9.]*\).*"samples_per_s": \([0-9.]*\).*/\1 \2/p' \
        "$OUT/train/run.json" | awk '{printf "%.2f %.0f\n", $1 * 100, $2}' ;;
    "python-paramd "*)
      "$PY" "$SRC/examples/python/cnn.py" --consistency "${1#* }" --workers 2 --threads 1 \
        "${len[@]}" >"$log" 2>&1
      sed -n 's/^final: test accuracy \([0-9.]*\)%.* \([0-9]*\) samples\/s.*/\1 \2/p' "$log" ;;
    ddp-gloo|comm-off)
      local comm=on; [ "$1" = comm-off ] && comm=off
      "$PY" "$SRC/bench/ddp_cnn.py" --workers 2 --threads 1 --comm $comm "${len[@]}" >"$log" 2>&1
      sed -n 's/^final: test accuracy \([0-9.]*\)%.* \([0-9]*\) samples\/s.*/\1 \2/p' "$log" ;;
  esac
  [ -s "$log" ] || true
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "torch $("$PY" -c 'import torch; print(torch.__version__)'), $("$B/paramd" version 2>/dev/null | head -1)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '%-6s %-22s %10s %10s  %s\n' round configuration accuracy samples/s "load avg"
for ((r = 1; r <= ROUNDS; r++)); do
  for c in "${configs[@]}"; do
    res=$(run "$c") || res=""
    if [ -z "$res" ]; then
      echo "FAILED: $c (round $r):"; tail -5 "$OUT/run.log"; exit 1
    fi
    read -r acc sps <<<"$res"
    printf '%-6s %-22s %9s%% %10s  %s\n' "$r" "$c" "$acc" "$sps" "$(cut -d' ' -f1 /proc/loadavg)"
    echo "$c|$acc|$sps" >>"$OUT/all"
  done
done
echo
echo "median over $ROUNDS rounds (samples/s; ratio to ddp-gloo's median):"
ddp=$(awk -F'|' '$1 == "ddp-gloo" {print $3}' "$OUT/all" | sort -n |
      awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}')
for c in "${configs[@]}"; do
  awk -F'|' -v c="$c" '$1 == c {print $3, $2}' "$OUT/all" | sort -n | awk -v c="$c" -v d="$ddp" '
    {s[NR] = $1; a[NR] = $2}
    END {m = (NR % 2) ? s[(NR + 1) / 2] : (s[NR / 2] + s[NR / 2 + 1]) / 2
         lo = a[1]; hi = a[1]; for (i = 2; i <= NR; i++) { if (a[i] < lo) lo = a[i]; if (a[i] > hi) hi = a[i] }
         printf "  %-22s %8.0f samples/s  %.2fx ddp-gloo   accuracy %s-%s%%\n", c, m, m / d, lo, hi}'
done
