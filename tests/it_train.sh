#!/usr/bin/env bash
# paramd train on real processes: synchronous training with W workers of
# batch b gives, step for step, the parameters of plain SGD with batch W*b
# on the same samples (W = 1, 2, 4; S = 1 and 3; mlp, and a small cnn);
# an async run learns; bad input fails with a clear message.
source "$(dirname "$0")/lib.sh"
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] \
  || fail "Fashion-MNIST missing: apt-get install dataset-fashion-mnist"
cd "$TMP"
LR=0.05; SEED=7; LIMIT=6000; STEPS=20
for W in 1 2 4; do
  for S in 1 3; do
    "$PARAMD" train --model mlp --consistency sync --workers $W --servers $S --batch 8 \
      --steps $STEPS --lr $LR --no-lr-scaling --seed $SEED --limit $LIMIT --quiet \
      --save-params "$TMP/p.$W.$S" --out "$TMP/run.$W.$S" >"$TMP/train.$W.$S" 2>&1 \
      || { cat "$TMP/train.$W.$S"; fail "paramd train W=$W S=$S"; }
    "$BUILD/tests/tool_bigbatch" "$TMP/p.$W.$S" mlp 0 $W 8 $STEPS $LR $SEED $LIMIT \
      || fail "sync != big batch for W=$W S=$S"
    pass "mlp sync W=$W S=$S equals SGD with batch $((W * 8))"
  done
done
"$PARAMD" train --model cnn --hidden 32 --no-dropout --consistency sync --workers 2 --servers 2 \
  --batch 4 --steps 10 --lr $LR --no-lr-scaling --seed $SEED --limit $LIMIT --quiet \
  --save-params "$TMP/p.cnn" --out "$TMP/run.cnn" >"$TMP/train.cnn" 2>&1 \
  || { cat "$TMP/train.cnn"; fail "paramd train cnn"; }
"$BUILD/tests/tool_bigbatch" "$TMP/p.cnn" cnn 32 2 4 10 $LR $SEED $LIMIT \
  || fail "cnn sync != big batch"
pass "cnn sync W=2 S=2 equals SGD with batch 8"

# the metrics, run.json and plot of a run
expect_line "$TMP/run.2.3/metrics.csv" "^time_s,worker_step,epoch,samples,train_loss,test_loss,test_acc,test_images,final$"
expect_line "$TMP/run.2.3/run.json" '"workers": 2'
expect_line "$TMP/run.2.3/plot.svg" "Test accuracy vs time"
pass "run directory holds metrics.csv, run.json, plot.svg"

# async learns: well above chance on a small subset
"$PARAMD" train --model mlp --consistency async --workers 2 --servers 2 --epochs 2 \
  --limit 5000 --quiet --out "$TMP/async" >"$TMP/async.log" 2>&1 \
  || { cat "$TMP/async.log"; fail "async run"; }
acc=$(sed -n 's/.*final: test accuracy \([0-9.]*\)%.*/\1/p' "$TMP/async.log")
[ -n "$acc" ] || { cat "$TMP/async.log"; fail "no final accuracy"; }
awk -v a="$acc" 'BEGIN { exit !(a > 60) }' || fail "async accuracy $acc% is not above 60%"
pass "async learns: $acc% test accuracy (chance is 10%)"

# paramd plot compares runs
"$PARAMD" plot "$TMP/run.1.1" "$TMP/async" --out "$TMP/cmp.svg" >"$TMP/plot.log" 2>&1 \
  || { cat "$TMP/plot.log"; fail "paramd plot"; }
expect_line "$TMP/cmp.svg" "mlp async W=2"
pass "paramd plot draws two runs"

# bad input
"$PARAMD" train --data "$TMP/nowhere" --quiet --steps 1 >"$TMP/nodata" 2>&1 && fail "missing data accepted"
expect_line "$TMP/nodata" "nowhere: no such directory"
expect_line "$TMP/nodata" "worker [01] failed"
mkdir -p "$TMP/empty"
"$PARAMD" train --data "$TMP/empty" --quiet --steps 1 >"$TMP/nofile" 2>&1 && fail "empty data dir accepted"
expect_line "$TMP/nofile" "empty/train-images-idx3-ubyte"
"$PARAMD" train --model resnet 2>"$TMP/e1" && fail "unknown model accepted"
expect_line "$TMP/e1" "--model 'resnet' is not mlp, cnn, word2vec or mf"
"$PARAMD" train --rule nonsense 2>"$TMP/e2" && fail "unknown rule accepted"
expect_line "$TMP/e2" "unknown rule 'nonsense'"
"$PARAMD" train --lr -1 2>"$TMP/e3" && fail "negative lr accepted"
"$PARAMD" train --help | grep -q -- "--consistency sync|async" || fail "help"
pass "bad arguments and missing data rejected with messages"

# train_kill NAME RANK STEP [ARGS]: paramd train (mlp, 3 workers, 1500 steps)
# writing NAME.log and NAME/, its worker RANK SIGKILLed once worker 0 has
# evaluated at STEP; RC: its exit status
train_kill() {
  local name=$1 rank=$2 step=$3; shift 3
  setsid "$PARAMD" train --model mlp --workers 3 --steps 1500 --limit 3000 --eval-every 100 \
    --out "$TMP/$name" "$@" >"$TMP/$name.log" 2>&1 &
  local train=$! victim="" p
  PIDS+=($train)
  wait_line "$TMP/$name.log" "^step $step  epoch"
  for p in $(ps -s $train -o pid=); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "PARAMD_RANK=$rank" && victim=$p
  done
  [ -n "$victim" ] || fail "no worker $rank in the session of paramd train"
  kill -KILL "$victim"
  wait $train; RC=$?
}

# a worker dies mid-run: the others finish, the model and metrics are kept
train_kill lost 2 100 --save-params "$TMP/lost.bin"; rc=$RC
[ $rc = 3 ] || { cat "$TMP/lost.log"; fail "paramd train exited $rc after worker 2 was killed, expected 3"; }
expect_line "$TMP/lost.log" "^paramd local: worker 2 failed \(killed by signal 9.*\); the others go on without it"
expect_line "$TMP/lost.log" "^steps per worker: 1500, 1500, 0;"
expect_line "$TMP/lost.log" "^workers lost: 2 "
expect_line "$TMP/lost.log" "^paramd train: worker 2 failed .*; the others finished"
grep -q '"workers_lost": \[2\]' "$TMP/lost/run.json" || fail "run.json: $(cat "$TMP/lost/run.json")"
[ -s "$TMP/lost.bin" ] || fail "no weights saved after losing a worker"
pass "worker 2 killed mid-run: the other two finished, weights and run.json kept (workers_lost [2]), exit 3"

# worker 0 (which evaluates and writes the results) dies mid-run: worker 1
# takes its part at the end, going on with its metrics.csv
train_kill lost0 0 200 --save-params "$TMP/lost0.bin"; rc=$RC
[ $rc = 3 ] || { cat "$TMP/lost0.log"; fail "paramd train exited $rc after worker 0 was killed, expected 3"; }
expect_line "$TMP/lost0.log" "^paramd local: worker 0 failed \(killed by signal 9.*\); the others go on without it"
expect_line "$TMP/lost0.log" "paramd train: worker 0 was lost; worker 1 evaluates the final weights and writes the results"
expect_line "$TMP/lost0.log" "final: test accuracy [0-9.]+%"
expect_line "$TMP/lost0.log" "steps per worker: 0, 1500, 1500;"
expect_line "$TMP/lost0.log" "workers lost: 0 "
grep -q '"workers_lost": \[0\]' "$TMP/lost0/run.json" || fail "run.json: $(cat "$TMP/lost0/run.json")"
[ "$(stat -c %s "$TMP/lost0.bin")" = "$(stat -c %s "$TMP/lost.bin")" ] || fail "weights not saved whole after losing worker 0"
# worker 0's rows up to its death, then worker 1's final row (step 1500)
awk -F, 'NR > 1 { n++; last = $2; fin = $9; if ($9 == 0 && $2 % 100) bad = 1 }
         END { exit !(n >= 3 && last == 1500 && fin == 1 && !bad) }' "$TMP/lost0/metrics.csv" \
  || fail "metrics.csv after losing worker 0: $(cat "$TMP/lost0/metrics.csv")"
"$PARAMD" plot "$TMP/lost0" >/dev/null || fail "paramd plot cannot read the run that lost worker 0"
pass "worker 0 killed mid-run: worker 1 wrote the final row, run.json (workers_lost [0]), the weights; exit 3"

# --replace-workers: a new worker 0 takes the dead one's place at the first
# clock nobody pushed for, goes on with its metrics.csv and writes the end
train_kill repl 0 200 --replace-workers 1; rc=$RC
[ $rc = 3 ] || { cat "$TMP/repl.log"; fail "paramd train exited $rc after worker 0 was replaced, expected 3"; }
expect_line "$TMP/repl.log" "^paramd local: worker 0 failed \(killed by signal 9.*\); starting a replacement \(0 more allowed\)"
expect_line "$TMP/repl.log" "coordinator: info: worker 0 joined at clock [0-9]+ \(died slot"
J=$(sed -nE 's/^paramd train: a new worker 0 joins the run at step ([0-9]+)$/\1/p' "$TMP/repl.log")
[ -n "$J" ] || fail "the replacement did not say where it joined: $(cat "$TMP/repl.log")"
expect_line "$TMP/repl.log" "^steps per worker: $((1500 - J)), 1500, 1500;"
grep -q "^workers lost" "$TMP/repl.log" && fail "a replaced worker was reported lost"
grep -q '"workers_lost": \[\]' "$TMP/repl/run.json" || fail "run.json: $(cat "$TMP/repl/run.json")"
expect_line "$TMP/repl.log" "^paramd train: worker 0 failed \(killed by signal 9.*\); a replacement finished in its place"
# rows at multiples of 100 before and after the join (none twice; those
# between the death and the join are missing), times increasing, the
# final row last
awk -F, 'NR > 1 { n++; if ($1 < t || (!$9 && ($2 % 100 || $2 <= s))) bad = 1; t = $1; s = $2; fin = $9 }
     END { exit !(n >= 3 && fin == 1 && s == 1500 && !bad) }' "$TMP/repl/metrics.csv" \
  || fail "metrics.csv with a replaced worker 0 (joined at $J): $(cat "$TMP/repl/metrics.csv")"
"$PARAMD" train --model mf --replace-workers 1 2>"$TMP/e4" && fail "--replace-workers accepted for mf"
expect_line "$TMP/e4" "--replace-workers is for --model mlp and cnn"
"$PARAMD" train --replace-workers -1 2>"$TMP/e5" && fail "--replace-workers -1 accepted"
expect_line "$TMP/e5" "--replace-workers"
pass "worker 0 killed with --replace-workers 1: a new worker 0 joined at clock $J and finished the run (metrics continued, nobody lost); exit 3"
