#!/usr/bin/env bash
# transports: tcp shm
# Every update rule applied by live servers (2 of them, so each sees part of
# the table, pushed in two ranges) equals the same rule replayed in one
# process: sync with 3 workers (mean per clock) and async with 1.  Then a
# user-defined rule from a shared object (examples/plugins/clip_sgd.c),
# named plugin=clip_sgd and loaded from the servers' --plugin-dir, and a
# plugin that does not load is a clear error at table creation.  Last, the
# plugin attack (docs/security.md): a library that writes a file when it
# is loaded, named by a worker by path, by a name the servers were not
# given, to servers with no plugin directory, and by path in a raw
# TABLE_CREATE that skips the client's checks: refused every time, and it
# never ran (while the same library in a --plugin-dir does run: the probe
# works).
source "$(dirname "$0")/lib.sh"
PLUGINS=$BUILD/examples/plugins
for rule in "rule=add" "rule=sgd lr=0.1" "rule=momentum lr=0.05 momentum=0.9" \
            "rule=adagrad lr=0.1" "rule=adam lr=0.01" "rule=ftrl lr=0.1 l1=0.01 l2=0.001" \
            "plugin=clip_sgd lr=0.1 l1=0.5"; do
  for cfg in "sync 3" "async 1"; do
    set -- $cfg
    out=$TMP/rules.log
    "$PARAMD" local --servers 2 --workers $2 --plugin-dir "$PLUGINS" -- "$BUILD/tests/tool_worker" rules \
        "$rule consistency=$1" 12 >"$out" 2>&1 || { cat "$out"; fail "$rule $1"; }
    expect_line "$out" "rules ok"
    pass "$rule $1 W=$2 matches the reference"
  done
done
# a plugin that is missing, or lacks the symbol, fails the table's creation
mkdir -m 700 "$TMP/plugins"
out=$TMP/bad.log
"$PARAMD" local --servers 1 --workers 1 --plugin-dir "$TMP/plugins" -- "$BUILD/tests/tool_worker" rules \
    "plugin=nope lr=0.1 consistency=async" 1 >"$out" 2>&1 && fail "missing plugin accepted"
expect_line "$out" "rule plugin 'nope' is not in this server's --plugin-dir: no file .*/plugins/nope.so; put nope.so there"
printf 'int x = 1;\n' >"$TMP/empty.c"
cc -shared -fPIC -o "$TMP/plugins/empty.so" "$TMP/empty.c" || fail "cc"
"$PARAMD" local --servers 1 --workers 1 --plugin-dir "$TMP/plugins" -- "$BUILD/tests/tool_worker" rules \
    "plugin=empty lr=0.1 consistency=async" 1 >"$out" 2>&1 && fail "plugin without symbols accepted"
expect_line "$out" "paramd_rule_"
pass "bad plugins rejected at table creation with a message"

# The plugin attack.
cat >"$TMP/probe.c" <<PROBE
#include <stdio.h>
__attribute__((constructor)) static void probe(void) {
    FILE *f = fopen("$TMP/probe.ran", "w");
    if (f) fclose(f);
}
PROBE
cc -shared -fPIC -o "$TMP/probe.so" "$TMP/probe.c" || fail "cc probe"
not_ran() { [ ! -e "$TMP/probe.ran" ] || fail "the probe library was loaded: $1"; }
"$PARAMD" local --servers 2 --workers 1 --plugin-dir "$TMP/plugins" -- "$BUILD/tests/tool_worker" rules \
    "plugin=$TMP/probe.so consistency=async" 1 >"$out" 2>&1 && fail "a plugin path was accepted"
expect_line "$out" "plugin=.*/probe.so is a path, and a spec names a plugin instead: plugin=NAME"
not_ran "named by path"
"$PARAMD" local --servers 2 --workers 1 --plugin-dir "$TMP/plugins" -- "$BUILD/tests/tool_worker" rules \
    "plugin=probe consistency=async" 1 >"$out" 2>&1 && fail "a plugin the servers do not have was accepted"
expect_line "$out" "rule plugin 'probe' is not in this server's --plugin-dir: no file .*/plugins/probe.so; put probe.so there to allow it"
not_ran "a name the servers were not given"
"$PARAMD" local --servers 2 --workers 1 -- "$BUILD/tests/tool_worker" rules \
    "plugin=probe consistency=async" 1 >"$out" 2>&1 && fail "a plugin was loaded by servers without --plugin-dir"
expect_line "$out" "this process loads no plugins; start the servers with --plugin-dir DIR"
not_ran "servers without a plugin directory"
"$PARAMD" local --servers 2 --workers 1 --plugin-dir "$TMP/plugins" -- "$BUILD/tests/tool_trust" plugin \
    "$TMP/probe.so" >"$out" 2>&1 || { cat "$out"; fail "raw TABLE_CREATE naming a path"; }
expect_line "$out" "trust ok: plugin"
not_ran "a raw TABLE_CREATE naming its path"
pass "a plugin named by path, unknown, or to servers without --plugin-dir: refused, no code ran"
# the control: the same library in the servers' directory is loaded (it
# has no rule symbols, so the table is still refused), so the probe works
mkdir -m 700 "$TMP/allowed" && cp "$TMP/probe.so" "$TMP/allowed/probe.so"
"$PARAMD" local --servers 1 --workers 1 --plugin-dir "$TMP/allowed" -- "$BUILD/tests/tool_worker" rules \
    "plugin=probe consistency=async" 1 >"$out" 2>&1 && fail "a plugin without symbols was accepted"
[ -e "$TMP/probe.ran" ] || fail "the probe in --plugin-dir did not run: the probe cannot tell"
chmod 777 "$TMP/allowed"
"$PARAMD" server --coordinator 127.0.0.1:1 --plugin-dir "$TMP/allowed" >"$out" 2>&1 && fail "a world-writable --plugin-dir was accepted"
expect_line "$out" "can be written by other users .*chmod go-w it"
pass "the probe runs from --plugin-dir only; a world-writable --plugin-dir is refused"
