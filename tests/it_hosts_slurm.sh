#!/usr/bin/env bash
# Slurm starts a whole cluster across simulated hosts (tests/hosts/):
# slurmctld on h0, slurmd on h1..h3, `srun` and `sbatch` from h0,
# `paramd launch --port P` finding the coordinator on the first host of
# the step's node list (h1) with nothing else typed.
#   - srun -N 3 -n 5: the seed's toy, sync, exact (100 everywhere), ranks
#     from SLURM_PROCID, the coordinator on h1, the servers on the fixed
#     ports a firewall would let through (--server-ports);
#   - the same with one rank too few for --workers 2: every rank fails at
#     once, saying the world size, where it came from and what it needs;
#   - sbatch with a script whose srun runs a short `paramd train` across
#     the hosts: the job completes, worker 0 reports a test accuracy and
#     writes its metrics.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/hosts/hosts.sh"
source "$(dirname "$0")/hosts/slurm.sh"
hosts_require slurmctld slurmd srun sbatch sinfo
hosts_up 3
slurm_up 3

out=$TMP/srun.toy
on_host 0 timeout 120 srun -N 3 -n 5 --overcommit --mpi=none \
  "$PARAMD" launch --servers 2 --workers 2 --port 7070 --server-ports 7100 \
  -- "$BUILD/examples/toy" --consistency sync --sleep-ms 0 >"$out" 2>&1 \
  || { cat "$out"; fail "srun toy exited non-zero"; }
expect_line "$out" "^final params \(sync, mean\):( 100\.0){10}\$"
expect_line "$out" "rank 0 of 5 \(Slurm\): coordinator of 2 servers and 2 workers, listening on 0\.0\.0\.0:7070, reachable at h1:7070"
expect_line "$out" "rank 4 of 5 \(Slurm\) on host h3: worker 1 of 2, coordinator at h1:7070"
expect_line "$out" "rank 1 of 5 \(Slurm\) on host h1: server [01], listening on 0\.0\.0\.0:7100, advertised as $(addr 1):7100"
expect_line "$out" "rank 2 of 5 \(Slurm\) on host h2: server [01], listening on 0\.0\.0\.0:7101, advertised as $(addr 2):7101"
pass "srun -N 3 -n 5: toy sync -> 100, coordinator on the first host of the node list, servers on --server-ports"

out=$TMP/srun.short
on_host 0 timeout 60 srun -N 2 -n 4 --overcommit --mpi=none \
  "$PARAMD" launch --servers 2 --workers 2 --port 7071 -- "$BUILD/examples/toy" >"$out" 2>&1 \
  && { cat "$out"; fail "a world of 4 for 1 + 2 + 2 processes was accepted"; }
n=$(grep -c "a world of 4 (SLURM_NTASKS) is not 1 coordinator + 2 servers + 2 workers (--servers, --workers) = 5: start 5 processes" "$out")
[ "$n" = 4 ] || { cat "$out"; fail "$n of 4 ranks said why the world does not fit"; }
pass "a world one rank short: each of the 4 ranks fails at once with the numbers"

cat >"$TMP/train.sbatch" <<EOF
#!/bin/bash
#SBATCH --job-name=paramd-train
#SBATCH --nodes=3
#SBATCH --ntasks=5
#SBATCH --overcommit
#SBATCH --output=$TMP/train.%j.out
# 1 coordinator + 2 servers + 2 workers; the coordinator listens on port
# 7072 of the first node of the job.
srun --mpi=none "$PARAMD" launch --servers 2 --port 7072 -- \\
  "$PARAMD" train --join --model mlp --steps 30 --batch 32 --limit 2000 \\
  --eval-every 30 --eval-samples 500 --quiet --out "$TMP/train"
EOF
on_host 0 timeout 180 sbatch --wait "$TMP/train.sbatch" >"$TMP/sbatch.out" 2>&1 \
  || { cat "$TMP/sbatch.out" "$TMP"/train.*.out; fail "sbatch job failed"; }
job_out=$(ls "$TMP"/train.*.out)
expect_line "$job_out" "^final: test accuracy [0-9.]+%"
expect_line "$job_out" "rank 0 of 5 \(Slurm\): coordinator of 2 servers and 2 workers"
[ -s "$TMP/train/metrics.csv" ] || fail "no metrics.csv from the job"
pass "sbatch + srun: paramd train across h1..h3 completed ($(grep -o 'test accuracy [0-9.]*%' "$job_out" | tail -1))"
