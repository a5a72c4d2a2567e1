#!/usr/bin/env bash
# Checkpoints on real processes (docs/durability.md):
#  - the seed's sync toy on 2 servers, checkpointed while it runs by
#    `paramd checkpoint`, restored onto 1 and onto 3 servers: every value
#    ends exactly at the checkpoint's clock + the 100 clocks run after it;
#  - paramd train (mlp, adam, sync, W=2) checkpointed every 0.3 s,
#    SIGKILLed with its whole cluster after its third checkpoint, resumed
#    from it (onto 2 servers instead of 1): the final weights equal, bit for
#    bit, those of the same run never interrupted; and one of 2 servers,
#    or the coordinator, SIGKILLed under paramd train --restarts 1: the
#    cluster goes on from its checkpoint by itself and ends bit-identical;
#  - bad checkpoints refused at start with a message naming the file: a
#    flipped byte, a truncated file, another format version, no manifest,
#    an empty directory; a client cannot choose where servers write;
#  - a full disk (a small tmpfs, when this test may mount one) fails that
#    checkpoint with a clear error, keeps the previous one, and training
#    goes on.
# transports: tcp shm
source "$(dirname "$0")/lib.sh"
TOY=$BUILD/examples/toy
cd "$TMP"

# ck_n ROOT: the number of the newest complete checkpoint in ROOT (0: none)
ck_n() {
  local n; n=$(sed -n 's/^ckpt-0*\([0-9][0-9]*\)$/\1/p' "$1/LATEST" 2>/dev/null)
  echo "${n:-0}"
}

# start_restored S W ROOT [coordinator args]: coordinator + S servers, all
# with --restore ROOT (ROOT may be "" for a fresh cluster)
start_cluster() {
  local s=$1 w=$2 root=$3; shift 3
  local ra=()
  [ -n "$root" ] && ra=(--restore "$root")
  start_coordinator "$s" "$w" "${ra[@]}" "$@"
  SERVER_PIDS=()
  for ((k = 0; k < s; k++)); do
    "$PARAMD" server --coordinator "$COORD" "${ra[@]}" >>"$TMP/server.$k.log" 2>&1 &
    SERVER_PIDS+=($!); PIDS+=($!)
  done
}
run_toys() { # W [toy args]: W toy workers against $COORD, in the background
  local w=$1; shift
  TOY_PIDS=()
  for ((r = 0; r < w; r++)); do
    PARAMD_COORDINATOR=$COORD PARAMD_RANK=$r "$TOY" "$@" >"$TMP/toy.$r.out" 2>&1 &
    TOY_PIDS+=($!); PIDS+=($!)
  done
}
wait_toys() {
  for p in "${TOY_PIDS[@]}"; do wait "$p" || { cat "$TMP"/toy.*.out; fail "a toy worker failed"; }; done
}
expect_all() { # VALUE: worker 0's final params are all VALUE
  local line; line=$(grep "final params" "$TMP/toy.0.out")
  echo "$line" | awk -v v="$1" '{ for (i = NF - 9; i <= NF; i++) if ($i + 0 != v + 0) exit 1 }' \
    || fail "final params: '$line', expected all $1"
}

# ---- the toy: checkpoint while it runs, restore onto 1 and 3 servers ------
start_cluster 2 2 "" --persist --checkpoint-dir "$TMP/root"
run_toys 2 --consistency sync --sleep-ms 10
applied=""
for ((i = 0; i < 1500; i++)); do # until a clock is applied (an event, not a time)
  "$PARAMD" stats --coordinator "$COORD" 2>/dev/null | grep -Eq "^  table 1 .* clock [1-9]" \
    && { applied=1; break; }
  sleep 0.02
done
[ -n "$applied" ] || fail "the toys applied no clock: $(cat "$TMP"/toy.*.out)"
out=$("$PARAMD" checkpoint --coordinator "$COORD") || fail "paramd checkpoint: $out"
C=$(echo "$out" | sed -n 's/^checkpoint at clock \([0-9]*\): .*/\1/p')
[ -n "$C" ] && [ "$C" -gt 0 ] || fail "no clock > 0 in '$out'"
wait_toys
expect_all 100
[ -f "$TMP/root/LATEST" ] && [ -f "$TMP/root/$(cat "$TMP/root/LATEST")/MANIFEST" ] \
  || fail "no complete checkpoint in $TMP/root"
kill -TERM $COORD_PID "${SERVER_PIDS[@]}" 2>/dev/null; wait $COORD_PID "${SERVER_PIDS[@]}" 2>/dev/null
pass "a sync toy on 2 servers checkpointed at clock $C while it ran"
for S in 1 3; do
  start_cluster $S 2 "$TMP/root"
  run_toys 2 --consistency sync --sleep-ms 0
  wait_toys
  expect_all $((C + 100))
  wait $COORD_PID "${SERVER_PIDS[@]}" 2>/dev/null
  pass "restored onto $S servers: every value is $((C + 100)) after 100 more clocks"
done

# ---- paramd train: interrupted and resumed, bit for bit -------------------
if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  O=(--model mlp --workers 2 --steps 500 --limit 4000 --quiet --rule adam --lr 0.001 --seed 3)
  "$PARAMD" train "${O[@]}" --out ref --save-params ref.bin >ref.log 2>&1 || { cat ref.log; fail "reference run"; }
  setsid "$PARAMD" train "${O[@]}" --out a --save-params a.bin --checkpoint-dir "$TMP/tr" \
      --checkpoint-every 0.3 >a.log 2>&1 &
  TRAIN=$!; PIDS+=($TRAIN)
  for ((i = 0; i < 600; i++)); do # wait for the event, not for a time
    [ "$(ck_n "$TMP/tr")" -ge 3 ] && break # (LATEST may have moved past 3)
    kill -0 $TRAIN 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL -- -$TRAIN 2>/dev/null; wait $TRAIN 2>/dev/null
  N=$(ck_n "$TMP/tr") # the newest complete one, which --resume takes
  [ "$N" -ge 1 ] || { cat a.log; fail "no checkpoint"; }
  # (its coordinator's line may not have reached a.log when the kill came:
  # LATEST is written first; then the resumed run's word is taken alone)
  C=$(sed -n "s/.*coordinator: info: checkpoint $N at clock \([0-9]*\): .*/\1/p" a.log | head -1)
  "$PARAMD" train "${O[@]}" --servers 2 --out b --save-params b.bin --resume "$TMP/tr" >b.log 2>&1 \
    || { cat b.log; fail "resumed run"; }
  if [ -n "$C" ]; then
    expect_line b.log "workers start at clock $C"
  else
    C=$(sed -nE 's/.*workers start at clock ([0-9]+).*/\1/p' b.log | head -1)
    [ -n "$C" ] || { cat b.log; fail "the resumed run did not say its clock"; }
  fi
  cmp -s ref.bin b.bin || fail "resumed from clock $C, the final weights differ from the uninterrupted run"
  pass "paramd train killed after its checkpoint at clock $C and resumed on 2 servers: weights bit-identical"

  # --restarts: a server, then the coordinator, SIGKILLed mid-run; paramd
  # train starts the cluster again from its newest checkpoint by itself (a
  # server), or the coordinator alone, which the running cluster rejoins
  # (the coordinator), and ends bit-identical
  O3=(--model mlp --workers 2 --servers 2 --steps 1500 --limit 4000 --quiet --rule adam --lr 0.001
      --seed 3 --eval-every 100)
  "$PARAMD" train "${O3[@]}" --out ref3 --save-params ref3.bin >ref3.log 2>&1 || { cat ref3.log; fail "reference run"; }
  for who in server coordinator; do
    rm -rf "$TMP/rs" r r.bin
    setsid "$PARAMD" train "${O3[@]}" --out r --save-params r.bin --checkpoint-dir "$TMP/rs" \
        --checkpoint-every 0.3 --restarts 1 >r.log 2>&1 &
    TRAIN=$!; PIDS+=($TRAIN)
    for ((i = 0; i < 600; i++)); do # wait for the event, not for a time
      [ "$(ck_n "$TMP/rs")" -ge 2 ] && break # (LATEST may have moved past 2)
      kill -0 $TRAIN 2>/dev/null || break
      sleep 0.05
    done
    [ "$(ck_n "$TMP/rs")" -ge 2 ] || { cat r.log; fail "no second checkpoint"; }
    victim=""
    for p in $(ps -s $TRAIN -o pid=); do
      tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q " $who " && { victim=$p; break; }
    done
    [ -n "$victim" ] || { cat r.log; fail "no $who left to kill (did the run end already?)"; }
    kill -KILL "$victim"
    wait $TRAIN; rc=$?
    [ $rc = 3 ] || { cat r.log; fail "paramd train --restarts exited $rc after the $who was killed, expected 3"; }
    cmp -s ref3.bin r.bin || fail "the $who SIGKILLed: the final weights differ from the uninterrupted run"
    awk -F, 'NR > 1 { n++; if ($1 < t || (!$9 && ($2 % 100 || $2 <= s))) bad = 1; t = $1; s = $2; fin = $9 }
         END { exit !(n == 15 && fin == 1 && s == 1500 && !bad) }' r/metrics.csv \
      || fail "metrics.csv after the $who was SIGKILLed: $(cat r/metrics.csv)"
    if [ $who = server ]; then
      expect_line r.log "^paramd train: server [01] exited \((killed by signal 9.*|exit status 1)\) while workers were running; starting the cluster again from the newest checkpoint in $TMP/rs \(restart 1 of 1\)"
      R=$(sed -nE 's/^paramd train: the run goes on from its checkpoint at step ([0-9]+)$/\1/p' r.log)
      [ -n "$R" ] || { cat r.log; fail "the restarted run did not say its clock"; }
      expect_line r.log "^paramd train: server [01] exited .*; the run went on from its checkpoint and finished"
      pass "the server SIGKILLed: paramd train --restarts 1 went on from its checkpoint at clock $R by itself, weights bit-identical, metrics whole, exit 3"
    else
      # the coordinator alone is started again; the running servers and
      # workers rejoin it: no checkpoint is read
      expect_line r.log "^paramd local: the coordinator exited \(killed by signal 9.*\) while workers were running; starting it again on 127\.0\.0\.1:[0-9]+, where the servers and workers rejoin it \(0 more allowed\)"
      expect_line r.log "took the cluster back: all 2 servers rejoined"
      expect_line r.log "^paramd train: the coordinator exited \(killed by signal 9.*\); a coordinator started again took the running cluster back and the run finished"
      grep -q "the run goes on from its checkpoint" r.log && fail "the coordinator's restart went back to a checkpoint"
      pass "the coordinator SIGKILLed: paramd train --restarts 1 started it again, the running cluster rejoined it, weights bit-identical, metrics whole, exit 3"
    fi
  done
else
  echo "skipped the paramd train part: Fashion-MNIST missing (apt-get install dataset-fashion-mnist)"
fi

# ---- bad checkpoints are refused at start, naming the file ----------------
CK=$TMP/root/$(cat "$TMP/root/LATEST")
restore_fails() { # WHAT REGEX: a server restoring from $TMP/bad fails with REGEX
  start_coordinator 1 1 --restore "$TMP/good"
  if "$PARAMD" server --coordinator "$COORD" --restore "$TMP/bad" >"$TMP/bad.log" 2>&1; then
    fail "$1: the server started"
  fi
  expect_line "$TMP/bad.log" "$2"
  kill -TERM $COORD_PID 2>/dev/null; wait $COORD_PID 2>/dev/null
  pass "$1: refused ('$(grep -o "$2" "$TMP/bad.log" | head -1)')"
}
rm -rf "$TMP/good"; cp -r "$CK" "$TMP/good"
fresh_bad() { rm -rf "$TMP/bad"; cp -r "$CK" "$TMP/bad"; }
F=server-0-of-2.pdck
fresh_bad; printf '\x55' | dd of="$TMP/bad/$F" bs=1 seek=40 conv=notrunc status=none
restore_fails "a flipped byte" "bad/$F is corrupt"
fresh_bad; truncate -s 30 "$TMP/bad/$F"
restore_fails "a truncated file" "bad/$F says it holds"
fresh_bad; printf '\x09' | dd of="$TMP/bad/$F" bs=1 seek=8 conv=notrunc status=none
restore_fails "another format version" "format version 9"
fresh_bad; rm "$TMP/bad/MANIFEST"
restore_fails "no manifest" "holds no checkpoint"
fresh_bad; cp "$TMP/bad/server-1-of-2.pdck" "$TMP/bad/$F"
restore_fails "a file of another server" "not the file the manifest names"
if "$PARAMD" coordinator --servers 1 --workers 1 --restore "$TMP/nowhere" >"$TMP/c.log" 2>&1; then
  fail "a coordinator restored from a missing directory"
fi
expect_line "$TMP/c.log" "nowhere"
pass "a coordinator asked to restore from nothing says so"

# a coordinator without --checkpoint-dir takes no checkpoint
start_cluster 1 1 "" --persist
out=$("$PARAMD" checkpoint --coordinator "$COORD" 2>&1) && fail "a checkpoint without --checkpoint-dir"
echo "$out" | grep -q "start it with --checkpoint-dir" || fail "unclear refusal: $out"
"$PARAMD" checkpoint --coordinator "$COORD" --dir /tmp/x >/dev/null 2>&1 \
  && fail "paramd checkpoint took a --dir"
kill -TERM $COORD_PID "${SERVER_PIDS[@]}" 2>/dev/null; wait $COORD_PID "${SERVER_PIDS[@]}" 2>/dev/null
pass "no checkpoint without the operator's --checkpoint-dir; a client cannot name one"

# ---- a full disk ------------------------------------------------------------
mkdir -p "$TMP/small"
if [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o size=256k tmpfs "$TMP/small" 2>/dev/null; then
  trap 'umount "$TMP/small" 2>/dev/null; cleanup' EXIT
  start_cluster 1 2 "" --persist --checkpoint-dir "$TMP/small/root"
  run_toys 2 --consistency sync --sleep-ms 5
  "$PARAMD" checkpoint --coordinator "$COORD" >"$TMP/ck1.log" 2>&1 || { cat "$TMP/ck1.log"; fail "first checkpoint"; }
  dd if=/dev/zero of="$TMP/small/fill" bs=4k 2>/dev/null # until the disk is full
  if "$PARAMD" checkpoint --coordinator "$COORD" >"$TMP/ck2.log" 2>&1; then
    fail "a checkpoint onto a full disk succeeded"
  fi
  expect_line "$TMP/ck2.log" "No space left on device"
  expect_line "$TMP/ck2.log" "the previous checkpoint is kept"
  grep -q "ckpt-000001" "$TMP/small/root/LATEST" || fail "LATEST moved"
  ls "$TMP/small/root/ckpt-000002" 2>/dev/null | grep -q . \
    && { ls -l "$TMP/small/root/ckpt-000002"; fail "a failed checkpoint left files"; }
  wait_toys
  expect_all 100
  kill -TERM $COORD_PID "${SERVER_PIDS[@]}" 2>/dev/null; wait $COORD_PID "${SERVER_PIDS[@]}" 2>/dev/null
  rm -f "$TMP/small/fill"
  start_cluster 1 2 "$TMP/small/root"
  run_toys 2 --consistency sync --sleep-ms 0
  wait_toys
  wait $COORD_PID "${SERVER_PIDS[@]}" 2>/dev/null
  grep -q "final params" "$TMP/toy.0.out" || fail "no run from the kept checkpoint"
  umount "$TMP/small"
  pass "a full disk fails that checkpoint clearly, keeps the previous one (restorable), training goes on"
else
  echo "skipped the full-disk part: cannot mount a tmpfs here (needs root)"
fi
