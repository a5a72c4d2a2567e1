#!/usr/bin/env bash
# Is the parameter server the bottleneck of CNN training?  (issue 6: "the
# CNN run with W = 4 on one machine: samples/s within 10% of the same run
# with communication disabled")
#
# For each configuration (consistency x servers x transport) it runs
# `paramd train --model cnn` with W workers for STEPS steps per worker twice,
# back to back: with communication on, then with `--comm off` (the same
# loop, batches, model math, BLAS threads and evaluation schedule, without
# the pull and the push: each worker applies its own gradient).  The
# comm-off run is the ceiling, measured next to the run it bounds so that
# both see the same load on the machine.  One line per configuration:
#
#   cnn W=4 S=1 sync transport=tcp steps=30 on=... off=... samples/s on/off=0.93
#
# samples/s is what `paramd train` writes in run.json: all workers' samples
# over the time from the start barrier to the end barrier on worker 0.
# With REPEAT=N each pair runs N times (on, off, on, off, ...) and the line
# gives the best of each (other jobs only ever slow a run down) and, after
# it, every figure.
# Periodic evaluations are switched off (--eval-every > STEPS) so that the
# timed part is training only; the final evaluation comes after it.
#
#   bash bench/comm_bench.sh [BUILD_DIR] [OUT_DIR] [STEPS]
#
# Environment: WORKERS [4], SERVERS ["1 2"], MODES ["sync async"],
# BATCH [64], REPEAT [1], EXTRA [extra paramd train options, e.g. "--threads 1"],
# TRANSPORTS ["tcp shm"; used only if `paramd train --help` lists
# --transport, otherwise the default transport and transport=default].
set -u
B=${1:-build}; OUT=${2:-runs/comm-bench}; STEPS=${3:-30}
WORKERS=${WORKERS:-4}; SERVERS=${SERVERS:-1 2}; MODES=${MODES:-sync async}
BATCH=${BATCH:-64}; EXTRA=${EXTRA:-}; REPEAT=${REPEAT:-1}
PARAMD=$B/paramd
[ -x "$PARAMD" ] || { echo "comm_bench: no $PARAMD (build first: make)" >&2; exit 2; }
if "$PARAMD" train --help | grep -q -- '--transport'; then
  TRANSPORTS=${TRANSPORTS:-tcp shm}
else
  TRANSPORTS=default
fi
mkdir -p "$OUT"

# samples_per_s of a run directory's run.json, or empty
sps() { sed -n 's/.*"samples_per_s": \([0-9.]*\).*/\1/p' "$1/run.json" 2>/dev/null; }

# run NAME TRANSPORT ARGS...: one paramd train run into $OUT/NAME
run() {
  local name=$1 tr=$2; shift 2
  local targ=()
  [ "$tr" != default ] && targ=(--transport "$tr")
  rm -rf "${OUT:?}/$name"
  # shellcheck disable=SC2086
  "$PARAMD" train --model cnn --workers "$WORKERS" --batch "$BATCH" --steps "$STEPS" \
    --eval-every $((STEPS + 1)) --quiet --out "$OUT/$name" "${targ[@]}" $EXTRA "$@" \
    >"$OUT/$name.log" 2>&1
}

echo "# comm_bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# tree $(git -C "$(dirname "$0")" describe --always --dirty 2>/dev/null || echo '?'):" \
     "cnn W=$WORKERS batch $BATCH, $STEPS steps per worker, extra options: ${EXTRA:-none}"
for tr in $TRANSPORTS; do
  for mode in $MODES; do
    for S in $SERVERS; do
      tag=cnn-$mode-w$WORKERS-s$S-$tr
      ons=""; offs=""; failed=""
      for ((r = 1; r <= REPEAT; r++)); do
        run "$tag-on" "$tr" --consistency "$mode" --servers "$S" || failed=1
        run "$tag-off" "$tr" --consistency "$mode" --servers "$S" --comm off || failed=1
        on=$(sps "$OUT/$tag-on"); off=$(sps "$OUT/$tag-off")
        [ -n "$on" ] && [ -n "$off" ] || failed=1
        [ -n "$failed" ] && break
        ons="$ons $on"; offs="$offs $off"
      done
      if [ -n "$failed" ]; then
        echo "cnn W=$WORKERS S=$S $mode transport=$tr FAILED (logs: $OUT/$tag-on.log, $OUT/$tag-off.log)"
        continue
      fi
      awk -v W="$WORKERS" -v S="$S" -v m="$mode" -v t="$tr" -v n="$STEPS" -v ons="$ons" -v offs="$offs" '
        function best(l,   a, k, i, b) { k = split(l, a, " "); b = 0
                                          for (i = 1; i <= k; i++) if (a[i] + 0 > b) b = a[i] + 0
                                          return b }
        BEGIN { on = best(ons); off = best(offs)
                printf "cnn W=%s S=%s %-5s transport=%s steps=%s on=%.0f off=%.0f samples/s on/off=%.3f",
                       W, S, m, t, n, on, off, on / off
                if (split(ons, x, " ") > 1) printf "  (on:%s; off:%s)", ons, offs
                printf "\n" }'
    done
  done
done
echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
