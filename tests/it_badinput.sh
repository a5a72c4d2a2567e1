#!/usr/bin/env bash
# Bad inputs get a clear error before any work is done (docs/limits.md):
#   - IDX images of another size than the models' 28x28 (train 32x32,
#     test 20x20), truncated files (plain and gzip'd), a header claiming
#     a huge data set: refused with a message, no sanitizer report (the
#     same script runs in the ASan build);
#   - an unwritable --save-params or --out: refused at start, no cluster;
#   - numbers out of range refused, never truncated (--eval-every
#     4294967297 is not 1);
#   - --workers beyond what the machine can hold: refused naming the
#     numbers (needs the Fashion-MNIST package: skipped without it);
#   - a disk that fills mid-run (a 4 KiB tmpfs where one can be mounted,
#     and always a file size limit, ulimit -f): the run stops at once
#     saying so, and metrics.csv ends with its last whole row;
#   - the coordinator's exit status says a worker died (3).
source "$(dirname "$0")/lib.sh"
IDX=$BUILD/tests/tool_idx
# A small good data set: 28x28, 600 training and 100 test images.
"$IDX" "$TMP/good" train 600 28 28 gz || fail "tool_idx"
"$IDX" "$TMP/good" test 100 28 28 plain || fail "tool_idx"
T="--workers 1 --servers 1 --steps 4 --batch 8 --quiet"

# expect_refused NAME REGEX CMD...: CMD exits non-zero and says REGEX.
expect_refused() {
  local name=$1 re=$2; shift 2
  "$@" >"$TMP/$name.out" 2>&1 && { cat "$TMP/$name.out"; fail "$name: accepted"; }
  grep -Eq -- "$re" "$TMP/$name.out" || { cat "$TMP/$name.out"; fail "$name: no line matching '$re'"; }
  if grep -q "Sanitizer\|runtime error" "$TMP/$name.out"; then
    cat "$TMP/$name.out"; fail "$name: sanitizer report"
  fi
  echo "  $name: $(grep -Eo -- "$re.*" "$TMP/$name.out" | head -1 | cut -c1-150)"
}

# ---- IDX files ------------------------------------------------------------
"$IDX" "$TMP/big" train 50 32 32 plain && "$IDX" "$TMP/big" test 10 28 28 plain
expect_refused idx32 "images are 32x32, but the model takes 28x28" \
  "$PARAMD" train --data "$TMP/big" $T --out "$TMP/r1"
"$IDX" "$TMP/small" train 50 28 28 plain && "$IDX" "$TMP/small" test 10 20 20 plain
expect_refused idx20 "t10k-images-idx3-ubyte: images are 20x20, but the model takes 28x28" \
  "$PARAMD" train --data "$TMP/small" $T --model cnn --out "$TMP/r2"
"$IDX" "$TMP/cut" train 50 28 28 cut && "$IDX" "$TMP/cut" test 10 28 28 plain
expect_refused idxcut "truncated: the header announces 50 images of 28x28 \(39216 bytes\) but the file has 39116 bytes" \
  "$PARAMD" train --data "$TMP/cut" $T --out "$TMP/r3"
"$IDX" "$TMP/gzcut" train 50 28 28 gzcut && "$IDX" "$TMP/gzcut" test 10 28 28 plain
expect_refused idxgzcut "train-images-idx3-ubyte.gz: (truncated|read error)" \
  "$PARAMD" train --data "$TMP/gzcut" $T --out "$TMP/r4"
"$IDX" "$TMP/huge" train 5 28 28 huge && "$IDX" "$TMP/huge" test 10 28 28 plain
expect_refused idxhuge "absurd header: 268435456 images of 28x28" \
  "$PARAMD" train --data "$TMP/huge" $T --out "$TMP/r5"
pass "IDX files of other sizes, truncated or huge: refused with a message"

# ---- output paths, numbers, workers ----------------------------------------
expect_refused saveparams "--save-params $TMP/nodir/p.bin: $TMP/nodir is not a directory" \
  "$PARAMD" train --data "$TMP/good" $T --save-params "$TMP/nodir/p.bin"
touch "$TMP/afile"
expect_refused outfile "--out $TMP/afile/run: $TMP/afile is not a directory" \
  "$PARAMD" train --data "$TMP/good" $T --out "$TMP/afile/run"
[ ! -e "$TMP/coordinator.log" ] || fail "a cluster was started"
for o in "--eval-every 4294967297" "--eval-samples 2147483648" "--batch 99999999999999999999" \
         "--workers 1025" "--straggle 4294967296:2" "--steps -1"; do
  set -- $o
  expect_refused "num${1//-/}" "paramd train: $1 '$2' is not" "$PARAMD" train --data "$TMP/good" $T $o
done
expect_refused roles "paramd: --max-connections '0' is not a number" \
  "$PARAMD" server --coordinator 127.0.0.1:1 --max-connections 0
pass "output paths checked at start; numbers out of range refused"
if [ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  expect_refused workers "--workers 1024 need about .* more than the .* this machine has available: use --workers [0-9]+ or fewer" \
    "$PARAMD" train --workers 1024 --steps 1
  pass "--workers checked against the memory available"
else
  echo "skipped: --workers memory check (no dataset-fashion-mnist)"
fi

# ---- a disk that fills mid-run ---------------------------------------------
check_metrics() { # DIR: the file ends with a newline, every row has 9 fields
  local f=$1/metrics.csv
  [ -s "$f" ] || fail "no $f"
  [ "$(tail -c1 "$f" | od -An -c | tr -d ' ')" = '\n' ] || fail "$f ends in a torn row: $(tail -c80 "$f")"
  awk -F, 'NF != 9 { bad = 1 } END { exit bad }' "$f" || fail "$f has a row without 9 fields"
  echo "  $f: $(($(wc -l <"$f") - 1)) whole rows"
}
LONG="--workers 1 --servers 1 --steps 400 --eval-every 2 --eval-samples 10 --batch 8 --quiet"
(ulimit -f 2; trap '' XFSZ; exec "$PARAMD" train --data "$TMP/good" $LONG --out "$TMP/full") \
  >"$TMP/fsize.out" 2>&1 && fail "the run went on after metrics.csv could not be written"
expect_line "$TMP/fsize.out" "cannot write $TMP/full/metrics.csv: File too large; the row of step [0-9]+ is not in it"
check_metrics "$TMP/full"
trap 'umount "$TMP/tiny" 2>/dev/null; cleanup' EXIT
if mkdir -p "$TMP/tiny" && mount -t tmpfs -o size=4k tmpfs "$TMP/tiny" 2>/dev/null; then
  "$PARAMD" train --data "$TMP/good" $LONG --out "$TMP/tiny/run" >"$TMP/tmpfs.out" 2>&1
  rc=$?
  cp -r "$TMP/tiny/run" "$TMP/tinycopy" 2>/dev/null
  umount "$TMP/tiny"
  [ $rc -ne 0 ] || fail "the run went on after the disk filled"
  expect_line "$TMP/tmpfs.out" "cannot write $TMP/tiny/run/metrics.csv: No space left on device; the row of step [0-9]+ is not in it"
  check_metrics "$TMP/tinycopy"
  pass "a disk that fills mid-run (tmpfs, ulimit -f): stopped at once, no torn row"
else
  pass "a file size limit reached mid-run (ulimit -f): stopped at once, no torn row (no tmpfs here)"
fi

# ---- the coordinator's exit status -----------------------------------------
start_coordinator 1 1
start_servers 1
"$BUILD/tests/tool_flood" die "$COORD" >"$TMP/die.out" 2>&1 || fail "die: $(cat "$TMP/die.out")"
wait "$COORD_PID"
rc=$?
[ $rc -eq 3 ] || fail "coordinator exited $rc after a worker died (3 expected): $(cat "$TMP/coordinator.log")"
expect_line "$TMP/coordinator.log" "the cluster ended with 1 worker dead"
pass "the coordinator exits 3 when a worker died"
