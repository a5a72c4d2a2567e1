#!/usr/bin/env bash
# make demo: the seed's toy in its three modes, then the main job: paramd
# train with its defaults (an MLP on Fashion-MNIST, synchronous, 2 workers).
set -eu
B=${1:-build}
echo "== the seed's toy: 10 floats on 2 servers, 2 workers x 100 pushes of ones"
for mode in "async mean" "sync mean" "sync sum"; do
  set -- $mode
  "$B/paramd" local --servers 2 --workers 2 -- "$B/examples/toy" \
      --consistency "$1" --aggregate "$2" --sleep-ms 0 | grep "final params"
done
echo
echo "== paramd train (defaults; see paramd train --help)"
"$B/paramd" train --out runs/demo
echo
echo "The plot of this run is runs/demo/plot.svg; compare runs with"
echo "  $B/paramd plot runs/demo runs/OTHER_RUN --out compare.svg"
