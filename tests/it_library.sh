#!/usr/bin/env bash
# it_library.sh - libparamd.so is the worker library and nothing else: it
# exports exactly the functions include/paramd.h declares with PARAMD_API
# (no internal pd_* name leaks), and carries none of the server's or the
# coordinator's code (they are in the paramd program only).
source "$(dirname "$0")/lib.sh"
LIB=$BUILD/libparamd.so
HDR=$(dirname "$0")/../include/paramd.h
[ -f "$LIB" ] || fail "no $LIB"
command -v nm >/dev/null || fail "nm (binutils) is needed"

grep -E '^PARAMD_API ' "$HDR" | sed -E 's/\(.*//; s/.*[ *]([a-z_0-9]+)$/\1/' | sort -u >"$TMP/declared"
nm -D --defined-only "$LIB" | awk '$2 == "T" {print $3}' | sort -u >"$TMP/exported"
[ -s "$TMP/declared" ] || fail "no PARAMD_API declarations found in $HDR"
if ! diff "$TMP/declared" "$TMP/exported" >"$TMP/diff"; then
  cat "$TMP/diff" >&2
  fail "libparamd.so's exports differ from paramd.h's PARAMD_API functions (< declared only, > exported only)"
fi
pass "libparamd.so exports the $(wc -l <"$TMP/declared") functions of paramd.h and nothing else"

# No role code inside: the server's and coordinator's entry points and the
# table engine are absent even as local symbols.
if nm "$LIB" | grep -E ' (pd_server_start|pd_coord_start|pd_gate_admit|pd_table_create|srv_dispatch)$'; then
  fail "libparamd.so carries server or coordinator code"
fi
# ... while the paramd program has them (the check above can see them).
nm "$PARAMD" | grep -q ' pd_server_start$' || fail "nm cannot see pd_server_start in $PARAMD: the check proves nothing"
pass "libparamd.so holds no server, coordinator or table-engine code"
