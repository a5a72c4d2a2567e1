#!/usr/bin/env bash
# paramd train --comm off and --lr-decay on real processes.
#
# --comm off: the run completes and says so (output, run.json); with one
# worker it is, float for float, the same SGD as a sync run with one worker
# and as one process with the same batches (tool_bigbatch); with two workers
# it learns.  --lr-decay: the decayed lr is reported, and it is applied: a
# decay of 1e-9 freezes the weights after the first epoch, so 2 epochs end
# where 1 epoch ended (and without the decay they do not).  Bad values and
# combinations are refused with messages.
source "$(dirname "$0")/lib.sh"
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] \
  || fail "Fashion-MNIST missing: apt-get install dataset-fashion-mnist"
cd "$TMP"
LR=0.05; SEED=7; LIMIT=600; B=8   # 75 steps per epoch for one worker
common=(--model mlp --batch $B --lr $LR --seed $SEED --limit $LIMIT --quiet)

# max |a-b| over two raw float32 files of the same size
maxdiff() {
  [ "$(stat -c %s "$1")" = "$(stat -c %s "$2")" ] || { echo inf; return; }
  paste <(od -An -v -f -w4 "$1") <(od -An -v -f -w4 "$2") |
    awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d } END { printf "%g\n", m + 0 }'
}

# ---- --comm off ------------------------------------------------------------
"$PARAMD" train "${common[@]}" --comm off --workers 1 --steps 20 \
  --save-params "$TMP/p.off1" --out "$TMP/off1" >"$TMP/off1.log" 2>&1 \
  || { cat "$TMP/off1.log"; fail "--comm off W=1"; }
expect_line "$TMP/off1.log" "COMMUNICATION OFF"
expect_line "$TMP/off1.log" "final \\(communication off"
expect_line "$TMP/off1/run.json" '"comm": "off"'
expect_line "$TMP/off1/run.json" '"bytes_pushed": 0,'
"$BUILD/tests/tool_bigbatch" "$TMP/p.off1" mlp 0 1 $B 20 $LR $SEED $LIMIT \
  || fail "--comm off W=1 != SGD in one process"
"$PARAMD" train "${common[@]}" --workers 1 --steps 20 \
  --save-params "$TMP/p.on1" --out "$TMP/on1" >"$TMP/on1.log" 2>&1 \
  || { cat "$TMP/on1.log"; fail "--comm on W=1"; }
expect_line "$TMP/on1/run.json" '"comm": "on"'
d=$(maxdiff "$TMP/p.off1" "$TMP/p.on1")
awk -v d="$d" 'BEGIN { exit !(d < 1e-6) }' || fail "--comm off W=1 differs from sync W=1 by $d"
pass "--comm off W=1: says so, equals SGD in one process and sync W=1 (max diff $d)"

"$PARAMD" train --model mlp --comm off --consistency async --workers 2 --servers 3 --epochs 2 \
  --limit 5000 --quiet --out "$TMP/off2" >"$TMP/off2.log" 2>&1 \
  || { cat "$TMP/off2.log"; fail "--comm off W=2"; }
expect_line "$TMP/off2.log" "COMMUNICATION OFF: 2 workers"
expect_line "$TMP/off2/run.json" '"servers": 0,'
acc=$(sed -n 's/.*final (communication off.*test accuracy \([0-9.]*\)%.*/\1/p' "$TMP/off2.log")
[ -n "$acc" ] || { cat "$TMP/off2.log"; fail "no final accuracy"; }
awk -v a="$acc" 'BEGIN { exit !(a > 60) }' || fail "--comm off accuracy $acc% is not above 60%"
pass "--comm off W=2 learns: $acc% (worker 0's own weights)"

# ---- --lr-decay ------------------------------------------------------------
"$PARAMD" train "${common[@]}" --workers 1 --epochs 1 \
  --save-params "$TMP/p.e1" --out "$TMP/e1" >"$TMP/e1.log" 2>&1 \
  || { cat "$TMP/e1.log"; fail "1 epoch"; }
"$PARAMD" train "${common[@]}" --workers 1 --epochs 2 --lr-decay 1e-9 --eval-every 40 \
  --save-params "$TMP/p.e2" --out "$TMP/e2" >"$TMP/e2.log" 2>&1 \
  || { cat "$TMP/e2.log"; fail "2 epochs with --lr-decay"; }
"$PARAMD" train "${common[@]}" --workers 1 --epochs 2 \
  --save-params "$TMP/p.e2n" --out "$TMP/e2n" >"$TMP/e2n.log" 2>&1 \
  || { cat "$TMP/e2n.log"; fail "2 epochs"; }
expect_line "$TMP/e2/run.json" '"lr_decay": 1e-09, "lr_final": 5e-11,'
expect_line "$TMP/e2.log" "lr x 1e-09 per epoch"
expect_line "$TMP/e2.log" "lr at the last step: 5e-11"
expect_line "$TMP/e2n/run.json" '"lr_decay": 1, "lr_final": 0.05,'
d=$(maxdiff "$TMP/p.e1" "$TMP/p.e2")
dn=$(maxdiff "$TMP/p.e1" "$TMP/p.e2n")
awk -v d="$d" 'BEGIN { exit !(d < 1e-6) }' || fail "--lr-decay 1e-9: epoch 2 still moved the weights by $d"
awk -v d="$dn" 'BEGIN { exit !(d > 1e-3) }' || fail "without decay epoch 2 moved the weights by only $dn"
pass "--lr-decay applied: epoch 2 moves the weights by $d with decay 1e-9, by $dn without"
# with comm off the same scaling goes through the local rule
"$PARAMD" train "${common[@]}" --comm off --workers 1 --epochs 2 --lr-decay 1e-9 \
  --save-params "$TMP/p.e2off" --out "$TMP/e2off" >"$TMP/e2off.log" 2>&1 \
  || { cat "$TMP/e2off.log"; fail "--comm off with --lr-decay"; }
d=$(maxdiff "$TMP/p.e1" "$TMP/p.e2off")
awk -v d="$d" 'BEGIN { exit !(d < 1e-6) }' || fail "--comm off --lr-decay 1e-9: epoch 2 moved the weights by $d"
pass "--lr-decay applied with --comm off too"

# ---- bad values ------------------------------------------------------------
"$PARAMD" train --comm maybe 2>"$TMP/b1" && fail "--comm maybe accepted"
expect_line "$TMP/b1" "--comm 'maybe' is not on or off"
"$PARAMD" train --comm 2>"$TMP/b2" && fail "--comm without a value accepted"
"$PARAMD" train --comm off --model mf 2>"$TMP/b3" && fail "--comm off with mf accepted"
expect_line "$TMP/b3" "--comm off is for the dense models \\(mlp, cnn\\), not mf"
"$PARAMD" train --comm off --backup 1 2>"$TMP/b4" && fail "--comm off with --backup accepted"
expect_line "$TMP/b4" "--comm off has no step to wait for: drop --backup"
for v in 0 1.5 -0.5 x; do
  "$PARAMD" train --lr-decay "$v" 2>"$TMP/b5" && fail "--lr-decay $v accepted"
  expect_line "$TMP/b5" "--lr-decay '$v' is not a factor F with 0 < F <= 1"
done
"$PARAMD" train --lr-decay 0.7 --rule adam 2>"$TMP/b6" && fail "--lr-decay with adam accepted"
expect_line "$TMP/b6" "--lr-decay scales the gradient, which rule adam undoes"
"$PARAMD" train --help | grep -q -- "--comm on|off" || fail "--comm not in --help"
"$PARAMD" train --help | grep -q -- "--lr-decay F" || fail "--lr-decay not in --help"
pass "bad --comm and --lr-decay values and combinations refused with messages"
