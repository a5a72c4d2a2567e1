#!/usr/bin/env bash
# The sparse workloads of `paramd train` on real processes (2 workers, 2
# servers): mf on a planted low-rank ratings set reaches a held-out RMSE
# near the noise floor; word2vec on a corpus with planted structure puts
# words of the same group next to each other (and runs on the Debian
# corpus, if the package `fortunes` is installed); bad input fails with a
# clear message.
source "$(dirname "$0")/lib.sh"
cd "$TMP"

# ---- mf: planted 200 users x 100 items, rank 4, sigma 0.1 ---------------
SIGMA=0.1
for cons in sync async; do
  "$PARAMD" train --model mf --users 200 --items 100 --rank 4 --noise $SIGMA \
    --workers 2 --servers 2 --consistency $cons --out "$TMP/mf.$cons" >"$TMP/mf.$cons.log" 2>&1 \
    || { cat "$TMP/mf.$cons.log"; fail "mf $cons run"; }
  line=$(grep '^final: test RMSE' "$TMP/mf.$cons.log") \
    || { cat "$TMP/mf.$cons.log"; fail "mf $cons: no final line"; }
  rmse=$(sed -n 's/.*test RMSE \([0-9.]*\).*/\1/p' <<<"$line")
  mean=$(sed -n 's/.*predicting the mean \([0-9.]*\).*/\1/p' <<<"$line")
  [ -n "$rmse" ] && [ -n "$mean" ] || fail "mf $cons: cannot parse '$line'"
  awk -v r="$rmse" -v s=$SIGMA 'BEGIN { exit !(r < 2 * s) }' \
    || fail "mf $cons: test RMSE $rmse is not within 2x the noise floor $SIGMA"
  awk -v r="$rmse" -v m="$mean" 'BEGIN { exit !(r < m / 4) }' \
    || fail "mf $cons: test RMSE $rmse is not far below the mean's $mean"
  pass "mf $cons: test RMSE $rmse (noise floor $SIGMA, predicting the mean $mean)"
done
expect_line "$TMP/mf.sync/metrics.csv" "^time_s,worker_step,epoch,samples,train_loss,test_loss,test_acc,test_images,final$"
expect_line "$TMP/mf.sync/metrics.csv" ",nan,[0-9]+,[01]$"
expect_line "$TMP/mf.sync/run.json" '"model": "mf"'

# mf on a CSV file: a header, ids that are not numbers, extra fields
{
  echo "userId,movieId,rating,timestamp"
  for ((u = 0; u < 40; u++)); do
    for ((i = 0; i < 30; i++)); do
      echo "u$u,item$i,$(( (u % 2 == i % 2) ? 5 : 1 )),0"
    done
  done
} >"$TMP/ratings.csv"
"$PARAMD" train --model mf --data "$TMP/ratings.csv" --dim 2 --epochs 40 --workers 2 \
  --servers 2 --quiet --out "$TMP/mf.csv" >"$TMP/mf.csv.log" 2>&1 \
  || { cat "$TMP/mf.csv.log"; fail "mf on a CSV"; }
expect_line "$TMP/mf.csv.log" "ratings.csv: 1200 ratings"
expect_line "$TMP/mf.csv.log" "noise floor \(sigma\) unknown"
rmse=$(sed -n 's/.*test RMSE \([0-9.]*\).*/\1/p' "$TMP/mf.csv.log")
awk -v r="$rmse" 'BEGIN { exit !(r < 0.5) }' || fail "mf on a CSV: test RMSE $rmse (mean's is 2)"
pass "mf on a CSV file: test RMSE $rmse"

# ---- word2vec: two disjoint vocabularies ---------------------------------
# Each line uses the words of one group only, so a word's neighbours must
# come from its own group.
awk 'BEGIN { srand(3)
  for (l = 0; l < 4000; l++) {
    g = (l % 2) ? "sun" : "moon"; s = ""
    for (k = 0; k < 10; k++) s = s (k ? " " : "") g int(rand() * 30)
    print s } }' >"$TMP/planted.txt"
"$PARAMD" train --model word2vec --data "$TMP/planted.txt" --dim 16 --subsample 0 \
  --epochs 2 --workers 2 --servers 2 --neighbours sun1,sun2,moon1,moon2 \
  --out "$TMP/w2v" >"$TMP/w2v.log" 2>&1 || { cat "$TMP/w2v.log"; fail "word2vec run"; }
expect_line "$TMP/w2v.log" "vocabulary 60 "
expect_line "$TMP/w2v.log" "^step [0-9]+ .* loss [0-9.]+"
for q in sun1 sun2 moon1 moon2; do
  line=$(grep "^neighbours of '$q':" "$TMP/w2v.log") || { cat "$TMP/w2v.log"; fail "no neighbours of $q"; }
  group=${q%%[0-9]*}
  n=$(sed 's/^[^:]*://' <<<"$line" | tr ',' '\n' | awk '{ print $1 }' | grep -c .)
  same=$(sed 's/^[^:]*://' <<<"$line" | tr ',' '\n' | awk '{ print $1 }' | grep -c "^$group[0-9]")
  [ "$n" = 5 ] && [ "$same" = 5 ] || fail "neighbours of $q are not all in its group: $line"
done
pass "word2vec: the 5 nearest neighbours of each word are in its own group"
expect_line "$TMP/w2v/metrics.csv" "^time_s,worker_step,epoch,samples,train_loss,test_loss,test_acc,test_images,final$"
"$PARAMD" plot "$TMP/w2v" "$TMP/mf.sync" --out "$TMP/cmp.svg" >"$TMP/plot.log" 2>&1 \
  || { cat "$TMP/plot.log"; fail "paramd plot of the sparse runs"; }
pass "metrics.csv and paramd plot"

# ---- word2vec on the Debian corpus ----------------------------------------
if [ -d /usr/share/games/fortunes ]; then
  "$PARAMD" train --model word2vec --epochs 1 --steps 200 --workers 2 --servers 2 \
    --neighbours man --consistency async --quiet --out "$TMP/fort" >"$TMP/fort.log" 2>&1 \
    || { cat "$TMP/fort.log"; fail "word2vec on fortunes"; }
  expect_line "$TMP/fort.log" "^data: /usr/share/games/fortunes: [0-9]+ words"
  expect_line "$TMP/fort.log" "^final: loss [0-9.]+"
  expect_line "$TMP/fort.log" "^neighbours of 'man': [a-z']+ "
  pass "word2vec on the fortunes corpus"
else
  echo "skip: word2vec on the Debian corpus (apt-get install fortunes)"
fi

# ---- bad input -------------------------------------------------------------
"$PARAMD" train --model word2vec --data "$TMP/nowhere.txt" --workers 1 --quiet \
  >"$TMP/e1" 2>&1 && fail "missing corpus accepted"
expect_line "$TMP/e1" "nowhere.txt: No such file or directory"
"$PARAMD" train --model mf --data "$TMP/nowhere.csv" --workers 1 --quiet \
  >"$TMP/e2" 2>&1 && fail "missing ratings accepted"
expect_line "$TMP/e2" "nowhere.csv: No such file or directory"
printf 'user,item,rating\n1,2,3.5\n1,3\n' >"$TMP/bad.csv"
"$PARAMD" train --model mf --data "$TMP/bad.csv" --workers 1 --quiet >"$TMP/e3" 2>&1 \
  && fail "malformed CSV accepted"
expect_line "$TMP/e3" "bad.csv:3: expected user,item,rating"
printf '1,2,3.5\n1,3,lots\n' >"$TMP/bad2.csv"
"$PARAMD" train --model mf --data "$TMP/bad2.csv" --workers 1 --quiet >"$TMP/e4" 2>&1 \
  && fail "non-numeric rating accepted"
expect_line "$TMP/e4" "bad2.csv:2: expected user,item,rating \(a number\), found '1,3,lots'"
printf 'one two three\n' >"$TMP/tiny.txt"
"$PARAMD" train --model word2vec --data "$TMP/tiny.txt" --workers 1 --quiet >"$TMP/e5" 2>&1 \
  && fail "tiny corpus accepted"
expect_line "$TMP/e5" "too few to train on"
"$PARAMD" train --model mf --dim 0 2>"$TMP/e6" && fail "--dim 0 accepted"
expect_line "$TMP/e6" "--dim '0' is not 1..10000000"
"$PARAMD" train --model glove 2>"$TMP/e7" && fail "unknown model accepted"
expect_line "$TMP/e7" "--model 'glove' is not mlp, cnn, word2vec or mf"
"$PARAMD" train --help | grep -q -- "--model word2vec" || fail "help lacks word2vec"
pass "bad input rejected with messages"
