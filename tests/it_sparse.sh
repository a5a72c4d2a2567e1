#!/usr/bin/env bash
# transports: tcp shm
# Sparse tables on real processes (tests/tool_sparse.c does the checking):
#   - the same pushes on 1 and on 3 servers give byte-identical tables, and
#     every pull equals an in-process replay (async with 1 worker, sync with
#     2; adagrad, adam, ftrl; duplicate keys in most pushes; untouched keys
#     pulled at the end show the initial rows are the same on any count);
#   - async pushes from 4 workers at once, cut into many frames, lose no
#     update (exact sums with rule=add);
#   - the API's error paths;
#   - lying key counts, wrong dims, unknown tables, misdirected keys sent
#     as raw frames are refused and change nothing;
#   - `paramd stats` reports rows, bytes and requests per table and server,
#     and with a server dead, the others' counters and the dead one's reason;
#   - a tool client (role=tool, tests/tool_role.c): the map, each server's
#     STATS text, opens, pushes and barriers refused before anything is
#     sent, no BYE; and paramd_last_error stays whole while another thread
#     fails calls.
source "$(dirname "$0")/lib.sh"
TS=$BUILD/tests/tool_sparse
for cfg in "async 1" "sync 2"; do
  set -- $cfg
  for rule in "rule=adagrad lr=0.1" "rule=adam lr=0.01" "rule=ftrl lr=0.1 l1=0.01"; do
    spec="$rule consistency=$1 init=normal:0.1 seed=42"
    for S in 1 3; do
      "$PARAMD" local --servers $S --workers $2 -- "$TS" replay "$spec" 12 "$TMP/dump.$S" \
          >"$TMP/replay.log" 2>&1 || { cat "$TMP/replay.log"; fail "replay '$spec' S=$S W=$2"; }
      expect_line "$TMP/replay.log" "replay ok"
    done
    cmp -s "$TMP/dump.1" "$TMP/dump.3" || fail "'$spec': 1 and 3 servers differ"
    pass "'$spec' W=$2: 1 server = 3 servers, bit for bit; pulls equal the replay"
  done
done

"$PARAMD" local --servers 3 --workers 4 -- "$TS" hammer 150 >"$TMP/hammer.log" 2>&1 \
  || { cat "$TMP/hammer.log"; fail "hammer"; }
expect_line "$TMP/hammer.log" "hammer ok"
pass "4 workers, async, many frames in flight: no update lost"

"$PARAMD" local --servers 2 --workers 1 -- "$TS" api >"$TMP/api.log" 2>&1 \
  || { cat "$TMP/api.log"; fail "api"; }
expect_line "$TMP/api.log" "api ok"
pass "API error paths"

"$PARAMD" local --servers 2 --workers 1 -- "$BUILD/tests/tool_role" >"$TMP/role.log" 2>&1 \
  || { cat "$TMP/role.log"; fail "tool client"; }
expect_line "$TMP/role.log" "role ok"
pass "a tool client: map, STATS text, refused opens, pushes and barriers, no BYE; paramd_last_error whole across threads"

"$PARAMD" local --servers 3 --workers 1 -- "$TS" bad >"$TMP/bad.log" 2>&1 \
  || { cat "$TMP/bad.log"; fail "bad frames"; }
expect_line "$TMP/bad.log" "badframes ok"
expect_line "$TMP/bad.log" "needs .* payload bytes after the count"
pass "bad sparse frames refused, table unchanged"

# paramd stats against a live cluster
start_coordinator 2 1 --persist
start_servers 2
PARAMD_COORDINATOR=$COORD PARAMD_RANK=0 "$TS" replay "rule=adagrad seed=1" 4 "$TMP/d" \
    >"$TMP/w.log" 2>&1 || { cat "$TMP/w.log"; fail "worker for stats"; }
"$PARAMD" stats --coordinator "$COORD" >"$TMP/stats.txt" 2>&1 || { cat "$TMP/stats.txt"; fail "paramd stats"; }
expect_line "$TMP/stats.txt" "^server 0 at "
expect_line "$TMP/stats.txt" "^server 1 at "
expect_line "$TMP/stats.txt" "^  table 1 kind sparse dim 8 rows [0-9]+ bytes [0-9]+ pushes [0-9]+ pulls"
expect_line "$TMP/stats.txt" "^total over 2 servers:"
expect_line "$TMP/stats.txt" "^  table 1 kind sparse dim 8 rows 3100 bytes [0-9]+ pushes 8 pulls 10 "
"$PARAMD" stats --coordinator "$COORD" --table 2 >"$TMP/stats2.txt" 2>&1 || fail "paramd stats --table"
grep -q "table 1" "$TMP/stats2.txt" && fail "--table 2 printed table 1"
pass "paramd stats: rows, bytes, pushes and pulls per table and server, and totals"
# (servers take their index in the order they register: which one dies is
# not known, only that one does)
kill -KILL "${SERVER_PIDS[1]}"; wait "${SERVER_PIDS[1]}" 2>/dev/null
"$PARAMD" stats --coordinator "$COORD" >"$TMP/stats3.txt" 2>&1 && { cat "$TMP/stats3.txt"; fail "paramd stats with a server dead exited 0"; }
expect_line "$TMP/stats3.txt" "^server [01] at [^ ]+:$"
expect_line "$TMP/stats3.txt" "^  table 1 kind sparse dim 8 rows [0-9]+ "
expect_line "$TMP/stats3.txt" "^server [01] at [^ ]+: .+"
pass "paramd stats with a server dead: the other's counters, the dead one's reason, exit status 1"
