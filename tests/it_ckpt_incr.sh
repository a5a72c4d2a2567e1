#!/usr/bin/env bash
# Incremental checkpoints of sparse tables, on real processes
# (docs/durability.md, "Incremental checkpoints"):
#  - a sync sparse table (adam: state planes and per-row step counts) and a
#    dense one on 2 servers, trained in phases that each touch 1% of the
#    rows, checkpointed after each with --checkpoint-full-every 8 (run A)
#    and with every checkpoint full (run B, the reference: the same
#    phases, bit-identical); one checkpoint of each run fails on server 1;
#  - run A's deltas hold exactly the rows their phase changed (the delta
#    after the failed one also those of the failed one), far fewer bytes
#    than a full checkpoint (a bound from the row counts);
#  - run A killed, its chain restored onto 3 and onto 1 servers: a full
#    checkpoint of the restored cluster holds the very rows, step counts,
#    rule state and dense values of run B's checkpoint at that clock;
#  - a truncated delta, a corrupt base, a missing base and a base that is
#    not the one named: refused at start naming the file, by servers and
#    coordinator;
#  - retention with --checkpoint-full-every 3 keeps the newest two
#    restorable chains; paramd local hands the option down; bad values
#    are refused.
source "$(dirname "$0")/lib.sh"
TOOL=$BUILD/tests/tool_ckincr
cd "$TMP"
ROWB=$((16 + 8 * 3 * 4)) # a row in a file: key, steps, 8 floats x (params + adam's 2 planes)

start_cluster() { # S ROOT_OR_EMPTY [coordinator args]: coordinator + S servers
  local s=$1 root=$2; shift 2
  local ra=()
  [ -n "$root" ] && ra=(--restore "$root")
  start_coordinator "$s" 1 "${ra[@]}" "$@"
  SERVER_PIDS=()
  for ((k = 0; k < s; k++)); do
    "$PARAMD" server --coordinator "$COORD" "${ra[@]}" >>"$TMP/server.$k.log" 2>&1 &
    SERVER_PIDS+=($!); PIDS+=($!)
  done
}
stop_cluster() { # SIGKILL: nothing but the checkpoints survives
  kill -KILL $COORD_PID "${SERVER_PIDS[@]}" 2>/dev/null
  wait $COORD_PID "${SERVER_PIDS[@]}" 2>/dev/null
}
run_phases() { # NAME K PHASES FAIL: the worker on a fresh 2-server cluster
  local name=$1 k=$2 phases=$3 failp=$4
  mkdir -p "$TMP/$name.keys"
  start_cluster 2 "" --persist --checkpoint-dir "$TMP/$name" --checkpoint-full-every "$k"
  PARAMD_COORDINATOR=$COORD PARAMD_RANK=0 "$TOOL" work "$TMP/$name" "$phases" "$failp" \
    "$TMP/$name.keys" >"$TMP/$name.out" 2>&1 || { cat "$TMP/$name.out"; fail "run $name"; }
  stop_cluster
}
bytes() { # DIR: the bytes of its server files
  cat "$1"/server-*.pdck | wc -c
}
kind() { # FILE: its checkpoint kind
  od -An -tu4 -j12 -N4 "$1" | tr -d ' '
}
clock_of() { # RUN PHASE
  sed -n "s/^phase $2 checkpoint .* clock \([0-9]*\)$/\1/p" "$TMP/$1.out"
}

# ---- the two runs ------------------------------------------------------------
run_phases A 8 8 4
run_phases B 1 8 4
for r in A B; do
  expect_line "$TMP/$r.out" "^phase 4 checkpoint failed: .*server 1: .*server-1-of-2.pdck.tmp"
done
for p in 0 1 2 3 5 6 7; do
  [ "$(clock_of A $p)" = "$(clock_of B $p)" ] && [ -n "$(clock_of A $p)" ] \
    || fail "phase $p: runs A and B checkpointed at clocks '$(clock_of A $p)' and '$(clock_of B $p)'"
done
pass "runs A (--checkpoint-full-every 8) and B (1) checkpointed the same clocks; each failed its phase-4 checkpoint on server 1"

# ---- what run A wrote ----------------------------------------------------------
A=$TMP/A
[ "$(ls "$A" | grep ckpt- | tr '\n' ' ')" = "ckpt-000001 ckpt-000002 ckpt-000003 ckpt-000004 ckpt-000006 ckpt-000007 ckpt-000008 " ] \
  || { ls -l "$A"; fail "run A keeps $(ls "$A" | tr '\n' ' '), not its chain 1-4, 6-8 (the failed 5 removed)"; }
[ "$(kind "$A/ckpt-000001/MANIFEST")" = 2 ] || fail "ckpt-000001 is not full"
for n in 2 3 4 6 7 8; do
  [ "$(kind "$A/ckpt-00000$n/MANIFEST")" = 4 ] || fail "ckpt-00000$n is not incremental"
  [ "$(kind "$A/ckpt-00000$n/server-0-of-2.pdck")" = 3 ] || fail "ckpt-00000$n's server file is not a delta"
done
[ "$(ls "$TMP/B" | grep ckpt- | tr '\n' ' ')" = "ckpt-000007 ckpt-000008 " ] \
  || fail "run B (every checkpoint full) keeps $(ls "$TMP/B" | tr '\n' ' '), not the newest two"
pass "run A: a full checkpoint then deltas, the failed one removed; run B keeps its newest two"

"$TOOL" keys "$A/ckpt-000003" | sort -n >k3 || fail "keys of ckpt-000003"
cmp -s k3 "$TMP/A.keys/keys.2" || fail "ckpt-000003 (after phase 2) holds keys $(tr '\n' ' ' <k3), not phase 2's"
"$TOOL" keys "$A/ckpt-000006" | sort -n >k6 || fail "keys of ckpt-000006"
sort -n -u "$TMP/A.keys/keys.4" "$TMP/A.keys/keys.5" >k45
[ "$(wc -l <k45)" -eq 80 ] || fail "phases 4 and 5 should train 80 distinct keys"
cmp -s k6 k45 || fail "ckpt-000006, the delta after the failed checkpoint, lacks rows of phase 4 or 5: $(diff k6 k45 | head -5)"
pass "each delta holds exactly the rows its phase changed; the one after the failed checkpoint also the failed one's"

full=$(bytes "$A/ckpt-000001") d3=$(bytes "$A/ckpt-000003") d6=$(bytes "$A/ckpt-000006")
[ "$full" -ge $((4000 * ROWB)) ] || fail "the full checkpoint has $full bytes, less than 4000 rows of $ROWB"
# 40 rows, plus per server file its header, the two table definitions and
# the 16-float dense table whole (3 planes): well under 2 KiB each
[ "$d3" -le $((40 * ROWB + 2 * 2048)) ] || fail "a delta of 40 rows has $d3 bytes"
[ "$d6" -le $((80 * ROWB + 2 * 2048)) ] || fail "a delta of 80 rows has $d6 bytes"
pass "sizes: full $full bytes (4000 rows), delta of 40 rows $d3, of 80 rows $d6"

# ---- restore run A's chain onto 3 and onto 1 servers -------------------------------
compare_restored() { # S FROM REFERENCE_DIR LABEL
  local s=$1 from=$2 ref=$3
  rm -rf "$TMP/R"
  start_cluster "$s" "$from" --checkpoint-dir "$TMP/R"
  out=$("$PARAMD" checkpoint --coordinator "$COORD" 2>&1) || fail "checkpoint of the restored cluster: $out"
  stop_cluster
  local dir; dir=$(echo "$out" | sed -n 's/^checkpoint at clock [0-9]*: \(.*\)$/\1/p')
  [ -n "$dir" ] && [ "$(kind "$dir/MANIFEST")" = 2 ] \
    || fail "the first checkpoint after a restore is not full ('$out')"
  "$TOOL" dump "$dir" | sort >restored || fail "dump restored"
  "$TOOL" dump "$ref" | sort >reference || fail "dump reference"
  [ "$(grep -c '^s ' reference)" -eq 4000 ] || fail "the reference has $(grep -c '^s ' reference) sparse rows"
  cmp -s restored reference || { diff restored reference | head -6; fail "$4: restored state differs from run B's"; }
  echo "$out" | grep -q "clock $(clock_of B "$5")" || fail "$4: restored at '$out', not at clock $(clock_of B "$5")"
}
compare_restored 3 "$A" "$TMP/B/ckpt-000008" "the chain 1-4,6-8 onto 3 servers" 7
cat "$TMP"/server.*.log >"$TMP/servers.log" # (a server's index is not its log's number)
expect_line "$TMP/servers.log" "restored 2 tables of .*ckpt-000008 .*a chain of 7 checkpoints.*now server 0 of 3"
pass "run A's chain of 7 restored onto 3 servers: rows, step counts, rule state, dense values bit-identical to run B's"
compare_restored 1 "$A/ckpt-000007" "$TMP/B/ckpt-000007" "the chain 1-4,6-7 onto 1 server" 6
pass "run A's ckpt-000007 (a delta) restored onto 1 server: bit-identical to run B's at that clock"

# ---- bad chains are refused, naming the file ---------------------------------------
cp -r "$A" "$TMP/good"
refused() { # LABEL REGEX: a server and a coordinator restoring $TMP/bad/ckpt-000008 fail with REGEX
  start_coordinator 1 1 --restore "$TMP/good"
  if "$PARAMD" server --coordinator "$COORD" --restore "$TMP/bad/ckpt-000008" >"$TMP/bad.log" 2>&1; then
    fail "$1: the server started"
  fi
  expect_line "$TMP/bad.log" "$2"
  kill -TERM $COORD_PID 2>/dev/null; wait $COORD_PID 2>/dev/null
  pass "$1: the server refuses ('$(grep -Eo -- "$2" "$TMP/bad.log" | head -1)')"
}
coord_refuses() { # LABEL REGEX
  if "$PARAMD" coordinator --servers 1 --workers 1 --restore "$TMP/bad/ckpt-000008" >"$TMP/cbad.log" 2>&1; then
    fail "$1: the coordinator started"
  fi
  expect_line "$TMP/cbad.log" "$2"
  pass "$1: the coordinator refuses too"
}
fresh_bad() { rm -rf "$TMP/bad"; cp -r "$A" "$TMP/bad"; }
fresh_bad; truncate -s 30 "$TMP/bad/ckpt-000007/server-0-of-2.pdck"
refused "a truncated delta" "bad/ckpt-000007/server-0-of-2.pdck says it holds"
fresh_bad; printf '\x55' | dd of="$TMP/bad/ckpt-000001/server-1-of-2.pdck" bs=1 seek=4000 conv=notrunc status=none
refused "a corrupt full base" "bad/ckpt-000001/server-1-of-2.pdck is corrupt"
fresh_bad; rm -r "$TMP/bad/ckpt-000004"
refused "a missing base" "bad/ckpt-000006/MANIFEST is an incremental checkpoint of .*bad/ckpt-000004, which cannot be restored: .*ckpt-000004/MANIFEST"
coord_refuses "a missing base" "bad/ckpt-000006/MANIFEST is an incremental checkpoint of .*bad/ckpt-000004, which cannot be restored"
fresh_bad; rm -r "$TMP/bad/ckpt-000004"; cp -r "$TMP/bad/ckpt-000003" "$TMP/bad/ckpt-000004"
refused "a base that is not the one named" "bad/ckpt-000004/MANIFEST is checkpoint 3 .*not its base"
coord_refuses "a base that is not the one named" "bad/ckpt-000004/MANIFEST is checkpoint 3 .*not its base"

# ---- retention with --checkpoint-full-every 3 -----------------------------------------
run_phases C 3 7 -1
[ "$(ls "$TMP/C" | grep ckpt- | tr '\n' ' ')" = "ckpt-000004 ckpt-000005 ckpt-000006 ckpt-000007 " ] \
  || fail "--checkpoint-full-every 3 after 7 checkpoints keeps $(ls "$TMP/C" | tr '\n' ' '), not 4-6 (the previous chain) and 7 (full)"
for n in 4 7; do [ "$(kind "$TMP/C/ckpt-00000$n/MANIFEST")" = 2 ] || fail "ckpt-00000$n is not full"; done
for n in 5 6; do [ "$(kind "$TMP/C/ckpt-00000$n/MANIFEST")" = 4 ] || fail "ckpt-00000$n is not a delta"; done
pass "every 3rd checkpoint full; kept: the newest chain (7) and the one before (4-6)"

# ---- the option --------------------------------------------------------------------
# paramd local hands it down to its coordinator (as train does: ckpt_opts.c)
"$PARAMD" local --servers 1 --workers 2 --checkpoint-dir "$TMP/L" --checkpoint-every 0.2 \
  --checkpoint-full-every 3 -- "$BUILD/examples/toy" --consistency sync --sleep-ms 30 >local.log 2>&1 \
  || { cat local.log; fail "paramd local with --checkpoint-full-every 3"; }
kinds=$(sed -n 's/.*coordinator: info: checkpoint \([0-9]*\) at clock .*(\(full\|delta of [0-9]*\), .*/\1:\2/p' local.log | head -4 | tr '\n' ' ')
[ "$kinds" = "1:full 2:delta of 1 3:delta of 2 4:full " ] \
  || { cat local.log; fail "paramd local --checkpoint-full-every 3 took '$kinds'"; }
pass "paramd local --checkpoint-full-every 3: $kinds"

for v in 0 x 1001; do
  if timeout 20 "$PARAMD" coordinator --servers 1 --workers 1 --checkpoint-full-every $v >opt.log 2>&1; then
    fail "--checkpoint-full-every $v taken"
  fi
  expect_line opt.log "checkpoint-full-every '$v' is not a count of checkpoints"
done
pass "--checkpoint-full-every refuses 0, 1001 and non-numbers"
