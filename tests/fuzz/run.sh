#!/usr/bin/env bash
# tests/fuzz/run.sh BUILD SECONDS [NAME...] - run each libFuzzer harness
# built in BUILD/fuzz (make fuzz) for SECONDS, starting from its saved
# corpus (tests/fuzz/corpus/NAME, read only) and writing what it finds to
# BUILD/corpus/NAME; a crash is saved in BUILD/crashes/ and fails the run.
# Prints one line per harness: executions, coverage, corpus size.
set -u
BUILD=${1:?usage: run.sh BUILD SECONDS [NAME...]}
SECS=${2:-60}
shift 2 || true
SRC=$(cd "$(dirname "$0")" && pwd)
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in "$SRC"/fuzz_*.c; do n=$(basename "$f" .c); names+=("${n#fuzz_}"); done
fi
status=0
for n in "${names[@]}"; do
  bin=$BUILD/fuzz/fuzz_$n
  [ -x "$bin" ] || { echo "fuzz: no $bin (make fuzz builds it)"; status=1; continue; }
  mkdir -p "$BUILD/corpus/$n" "$BUILD/crashes"
  log=$BUILD/fuzz-$n.log
  "$bin" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$BUILD/crashes/$n-" \
      "$BUILD/corpus/$n" "$SRC/corpus/$n" >"$log" 2>&1
  rc=$?
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$')
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
  units=$(ls "$BUILD/corpus/$n" | wc -l)
  if [ $rc -ne 0 ]; then
    status=1
    echo "fuzz_$n: FAILED (exit $rc) after ${execs:-?} runs; see $log and $BUILD/crashes/"
    grep -E 'ERROR|CHECK failed|SUMMARY|Test unit written' "$log" | head -5
  else
    echo "fuzz_$n: ${SECS} s, ${execs:-?} runs, ${cov:-cov ?}, corpus +$units"
  fi
done
exit $status
