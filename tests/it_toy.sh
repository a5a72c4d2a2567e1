#!/usr/bin/env bash
# transports: tcp shm
# The seed's toy (10 floats, 2 workers, 100 iterations of pull, push ones)
# gives its exact results in every mode with 1, 2 and 4 servers, started by
# `paramd local`: 200 async, 100 sync with the mean, 200 sync with the sum.
# 10 floats on 4 servers is also a table whose length does not divide by S.
source "$(dirname "$0")/lib.sh"
for S in 1 2 4; do
  for mode in "async mean 200.0" "sync mean 100.0" "sync sum 200.0"; do
    set -- $mode
    out=$TMP/toy.$S.$1.$2
    "$PARAMD" local --servers $S --workers 2 -- "$BUILD/examples/toy" \
        --consistency $1 --aggregate $2 --sleep-ms 0 >"$out" 2>&1 \
      || { cat "$out"; fail "toy S=$S $1 $2 exited non-zero"; }
    want="\[worker 0\] final params \($1, $2\):( $3){10}\$"
    expect_line "$out" "$want"
    pass "toy S=$S $1/$2 -> $3"
  done
done
