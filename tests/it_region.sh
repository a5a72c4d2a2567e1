#!/usr/bin/env bash
# transports: tcp shm
# Shared buffers (paramd_alloc, docs/transports.md): tests/tool_region.c
# checks exact values through them (async and sync, two servers, a worker
# with shared_buffers=no beside one with), that over shared memory the
# large requests go by reference and over TCP nothing is mapped (the
# servers' own STATS counters), paramd_free and paramd_close, and bad
# REGION_* frames on raw connections; then the cluster ends cleanly.
source "$(dirname "$0")/lib.sh"
start_coordinator 2 2
start_servers 2
"$BUILD/tests/tool_region" "$COORD" >"$TMP/region.log" 2>&1 || { cat "$TMP/region.log"; fail "shared buffers"; }
expect_line "$TMP/region.log" "^region ok$"
pass "shared buffers: values, path, bad frames"
wait "$COORD_PID" || fail "coordinator exited non-zero"
wait "${SERVER_PIDS[0]}" || fail "server 0 exited non-zero: $(cat "$TMP/server.0.log")"
wait "${SERVER_PIDS[1]}" || fail "server 1 exited non-zero: $(cat "$TMP/server.1.log")"
if grep -Eq "runtime error|AddressSanitizer|LeakSanitizer" "$TMP"/server.*.log; then
  cat "$TMP"/server.*.log; fail "a server reported a sanitizer error"
fi
pass "cluster shut down cleanly"
