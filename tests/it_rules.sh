#!/usr/bin/env bash
# transports: tcp shm
# Every update rule applied by live servers (2 of them, so each sees part of
# the table, pushed in two ranges) equals the same rule replayed in one
# process: sync with 3 workers (mean per clock) and async with 1.  Then a
# user-defined rule from a shared object (examples/plugins/clip_sgd.c),
# and a plugin that does not load is a clear error at table creation.
source "$(dirname "$0")/lib.sh"
PLUGIN=$BUILD/examples/plugins/clip_sgd.so
for rule in "rule=add" "rule=sgd lr=0.1" "rule=momentum lr=0.05 momentum=0.9" \
            "rule=adagrad lr=0.1" "rule=adam lr=0.01" "rule=ftrl lr=0.1 l1=0.01 l2=0.001" \
            "plugin=$PLUGIN lr=0.1 l1=0.5"; do
  for cfg in "sync 3" "async 1"; do
    set -- $cfg
    out=$TMP/rules.log
    "$PARAMD" local --servers 2 --workers $2 -- "$BUILD/tests/tool_worker" rules \
        "$rule consistency=$1" 12 >"$out" 2>&1 || { cat "$out"; fail "$rule $1"; }
    expect_line "$out" "rules ok"
    pass "$rule $1 W=$2 matches the reference"
  done
done
# a plugin that is missing, or lacks the symbol, fails the table's creation
out=$TMP/bad.log
"$PARAMD" local --servers 1 --workers 1 -- "$BUILD/tests/tool_worker" rules \
    "plugin=$TMP/nope.so lr=0.1 consistency=async" 1 >"$out" 2>&1 && fail "missing plugin accepted"
expect_line "$out" "nope.so"
printf 'int x = 1;\n' >"$TMP/empty.c"
cc -shared -fPIC -o "$TMP/empty.so" "$TMP/empty.c" || fail "cc"
"$PARAMD" local --servers 1 --workers 1 -- "$BUILD/tests/tool_worker" rules \
    "plugin=$TMP/empty.so lr=0.1 consistency=async" 1 >"$out" 2>&1 && fail "plugin without symbols accepted"
expect_line "$out" "paramd_rule_"
pass "bad plugins rejected at table creation with a message"
