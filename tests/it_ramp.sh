#!/usr/bin/env bash
# transports: tcp shm
# Uneven sharding and reassembly: tables whose length does not divide by S
# (7 on 3 servers, 1 float on 4 servers, 1000003 on 3), initial values, and
# element-wise distinct pushes from 3 workers, checked exactly by every
# worker, async and sync.
source "$(dirname "$0")/lib.sh"
for cfg in "3 7" "4 1" "3 1000003" "1 5"; do
  set -- $cfg
  for cons in async sync; do
    out=$TMP/ramp.$1.$2.$cons
    "$PARAMD" local --servers $1 --workers 3 -- "$BUILD/tests/tool_worker" ramp $2 $cons \
        >"$out" 2>&1 || { cat "$out"; fail "ramp S=$1 n=$2 $cons"; }
    [ "$(grep -c 'ramp ok' "$out")" = 3 ] || { cat "$out"; fail "ramp S=$1 n=$2 $cons: not every worker ok"; }
    pass "ramp S=$1 n=$2 $cons"
  done
done
# the error paths of the API against a live cluster
out=$TMP/errors
"$PARAMD" local --servers 2 --workers 1 -- "$BUILD/tests/tool_worker" errors >"$out" 2>&1 \
  || { cat "$out"; fail "API error paths"; }
expect_line "$out" "errors ok"
pass "API error paths"
