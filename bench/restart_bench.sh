#!/usr/bin/env bash
# What a server's or the coordinator's death costs a run under `paramd
# train --restarts 1` (docs/durability.md, "When a server dies", "When the
# coordinator dies"): the same sync run (mlp, W=2, S=2, a checkpoint every
# CKPT_S seconds) is timed whole, then again with one server SIGKILLed
# once the run has taken KILL_AFTER checkpoints, then again with the
# coordinator SIGKILLed at the same point, rounds alternated so that the
# machine's load falls on all alike.  Per round and victim it prints:
#   - kill -> going on: seconds from the SIGKILL to
#       a server: the restarted worker 0 saying "the run goes on from its
#       checkpoint" (the cluster stopped, started again, every table
#       restored); worker 0 prints that line just before the start
#       barrier of the restarted cluster, so its first step (a few ms)
#       follows at once;
#       the coordinator: the coordinator started again saying it "took
#       the cluster back" (every server rejoined it); the workers never
#       stopped training meanwhile;
#   - the clock it went on from (a server: its checkpoint's), and the
#     run's wall time against the uninterrupted one of the same round
#     (its ratio);
#   - whether the final weights are bit-identical to the uninterrupted
#     run's (they must be: sync).
# The victim "replace" is a server SIGKILLed under `--replace-servers 1`
# instead (docs/durability.md, "a replacement restores its shard"): kill
# -> going on is the SIGKILL to the coordinator's "server K replaced"
# line, after which the waiting workers send again and train on; the
# clocks its shard lost (C..A) are printed, and the final test accuracy
# of both runs, since the weights then differ by design.
#
#   bash bench/restart_bench.sh [BUILD_DIR] [ROUNDS] [STEPS]
#   WHO="server coordinator replace" (the default) or any of them
set -eu
B=${1:-build}; ROUNDS=${2:-3}; STEPS=${3:-3000}
CKPT_S=${CKPT_S:-1}; KILL_AFTER=${KILL_AFTER:-2}
T=$(mktemp -d /tmp/paramd-restart-bench.XXXXXX)
trap 'pkill -KILL -s "${SID:-0}" 2>/dev/null; rm -rf "$T"' EXIT
O=(--model mlp --workers 2 --servers 2 --steps "$STEPS" --limit 4000 --rule adam --lr 0.001
   --seed 3 --eval-every 500 --quiet)
now() { date +%s.%N; }
echo "# restart_bench: $(date -u '+%F %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
WHO=${WHO:-server coordinator replace}
echo "# paramd train ${O[*]}; a checkpoint every $CKPT_S s; the victim ($WHO) SIGKILLed after checkpoint $KILL_AFTER"
for ((r = 1; r <= ROUNDS; r++)); do
  rm -rf "$T"/*
  t0=$(now)
  "$B/paramd" train "${O[@]}" --save-params "$T/ref.bin" --out "$T/ref" >"$T/ref.log" 2>&1
  t_ref=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')
  for who in $WHO; do
    rm -rf "$T/ck" "$T/k" "$T/k.bin"
    t0=$(now)
    how=(--restarts 1); [ "$who" = replace ] && how=(--replace-servers 1)
    setsid "$B/paramd" train "${O[@]}" --save-params "$T/k.bin" --out "$T/k" \
      --checkpoint-dir "$T/ck" --checkpoint-every "$CKPT_S" "${how[@]}" >"$T/k.log" 2>&1 &
    SID=$!
    want=$(printf 'ckpt-%06d' "$KILL_AFTER")
    until grep -qs "$want" "$T/ck/LATEST"; do
      kill -0 $SID 2>/dev/null || { echo "round $r: the run ended before checkpoint $KILL_AFTER"; exit 1; }
      sleep 0.02
    done
    victim=""
    role=$who; [ "$who" = replace ] && role=server
    for p in $(ps -s $SID -o pid=); do
      tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q " $role " && { victim=$p; break; }
    done
    [ -n "$victim" ] || { echo "round $r: no $who to kill"; exit 1; }
    kill -KILL "$victim"; t_kill=$(now)
    # the line after which the run trains again (a server), or after
    # which its coordinator is back (the coordinator)
    if [ "$who" = server ]; then mark="the run goes on from its checkpoint"
    elif [ "$who" = replace ]; then mark="coordinator: warning: server [0-9]+ replaced by"
    else mark="took the cluster back"; fi
    timeout 120 tail -n +1 -f "$T/k.log" | grep -E -m1 -q "$mark"
    t_on=$(now)
    wait $SID || true
    t_all=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')
    C=$(sed -nE 's/^paramd train: the run goes on from its checkpoint at step ([0-9]+)$/\1/p' "$T/k.log")
    same=$(cmp -s "$T/ref.bin" "$T/k.bin" && echo "bit-identical" || echo "DIFFERENT")
    if [ "$who" = replace ]; then
      re='.* from [^ ]+ \(clock ([0-9]+)\) and goes on at clock ([0-9]+),.*'
      C=$(sed -nE "s/$re/\2 (its shard lost \1..\2)/p" "$T/k.log" | head -1)
      acc() { sed -nE 's/^final: test accuracy ([0-9.]+%).*/\1/p' "$1" | tail -1; }
      same="differ by design (accuracy $(acc "$T/k.log") against $(acc "$T/ref.log"))"
    fi
    awk -v r="$r" -v who="$who" -v k="$t_kill" -v on="$t_on" -v c="${C:--}" -v ref="$t_ref" \
        -v all="$t_all" -v same="$same" 'BEGIN {
      printf "round %d  %-11s  kill -> going on %.2f s  from clock %s  " \
             "wall %.1f s against %.1f s uninterrupted (x%.2f)  weights %s\n",
             r, who, on - k, c, all, ref, all / ref, same }'
  done
done
