#!/usr/bin/env bash
# bench/run.sh - run the benchmarks (`make bench` calls this).
#
#   bash bench/run.sh BUILD_DIR [paramd bench options...]
#
# Runs `paramd bench` (the full run unless options say otherwise, e.g.
# --quick), then the update-rule and sparse-table benchmarks (rules_bench,
# sparse_bench; bench/train_bench.sh trains models and is run by hand),
# and keeps what they print in BUILD_DIR/bench/results-DATE.txt, next to
# the machine's load and CPU.
# Benchmarks are programs: nothing here asserts a time.  See
# bench/README.md for what each figure means and the recorded results.
set -eu
BUILD=${1:?usage: bash bench/run.sh BUILD_DIR [paramd bench options]}
shift
BUILD=$(cd "$BUILD" && pwd)
mkdir -p "$BUILD/bench"
OUT=$BUILD/bench/results-$(date +%Y%m%dT%H%M%S).txt
{
  echo "# $(date -Is)  $(uname -srm)  $(nproc) cores  load: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "# paramd bench $*"
} | tee "$OUT"
"$BUILD/paramd" bench "$@" | tee -a "$OUT"
for prog in rules_bench sparse_bench; do
  [ -x "$BUILD/bench/$prog" ] || continue
  echo "# $prog" | tee -a "$OUT"
  "$BUILD/bench/$prog" | tee -a "$OUT"
done
echo "results kept in $OUT"
