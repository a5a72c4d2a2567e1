#!/usr/bin/env bash
# One mpirun starts a whole cluster across simulated hosts (tests/hosts/):
# h1, h2, h3 with 2 slots each, mpirun in h0 with its rsh agent wrapped
# around the namespaces, `paramd launch` choosing each rank's role, the
# coordinator's address passed by a rendezvous file on the shared file
# system.  With 5 ranks: coordinator and server 0 on h1, server 1 and
# worker 0 on h2, worker 1 on h3.
#   - the seed's toy gives its exact values in all three modes (async 200,
#     sync 100, sync with the sum 200);
#   - worker 0 reaches server 1 (same host) over shared memory and server 0
#     (another host) over TCP; worker 1 reaches both over TCP: the host
#     identity decides, as the servers' STATS say;
#   - the servers advertised their hosts' addresses (never 0.0.0.0 or
#     loopback), and every rank said its role and host.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/hosts/hosts.sh"
hosts_require mpirun
hosts_up 3
printf 'h1 slots=2\nh2 slots=2\nh3 slots=2\n' >"$TMP/hostfile"
# mpirun [ARGS]: Open MPI 4 across h1..h3, from h0; its daemons and ranks
# use only the test subnet
mpirun_hosts() {
  on_host 0 timeout 120 mpirun --allow-run-as-root --hostfile "$TMP/hostfile" \
    --mca plm_rsh_agent "$HOSTS_LIB/rsh" --mca oob_tcp_if_include "$(SUBNET)" \
    --mca btl_tcp_if_include "$(SUBNET)" "$@"
}

for mode in "async mean 200.0" "sync mean 100.0" "sync sum 200.0"; do
  set -- $mode
  out=$TMP/toy.$1.$2
  mpirun_hosts -np 5 "$PARAMD" launch --servers 2 --workers 2 --rendezvous "$TMP/rdv.$1.$2" \
    -- "$BUILD/examples/toy" --consistency "$1" --aggregate "$2" --sleep-ms 0 >"$out" 2>&1 \
    || { cat "$out"; fail "mpirun toy $1/$2 exited non-zero"; }
  expect_line "$out" "^final params \($1, $2\):( $3){10}\$"
  pass "mpirun across h1..h3: toy $1/$2 -> $3"
done
out=$TMP/toy.async.mean
expect_line "$out" "rank 0 of 5 \(Open MPI\): coordinator of 2 servers and 2 workers, listening on 0\.0\.0\.0:[0-9]+, reachable at 10\.231\.$HX\.11:[0-9]+"
expect_line "$out" "rank 1 of 5 \(Open MPI\) on host h1: server [01], listening on 0\.0\.0\.0:[0-9]+, advertised as 10\.231\.$HX\.11:[0-9]+"
expect_line "$out" "rank 2 of 5 \(Open MPI\) on host h2: server [01], listening on 0\.0\.0\.0:[0-9]+, advertised as 10\.231\.$HX\.12:[0-9]+"
expect_line "$out" "rank 3 of 5 \(Open MPI\) on host h2: worker 0 of 2, coordinator at 10\.231\.$HX\.11:"
expect_line "$out" "rank 4 of 5 \(Open MPI\) on host h3: worker 1 of 2, coordinator at 10\.231\.$HX\.11:"
pass "each rank said its role and host; servers advertised their host's address"

out=$TMP/links
mpirun_hosts -np 5 "$PARAMD" launch --servers 2 --rendezvous "$TMP/rdv.links" \
  -- "$BUILD/tests/tool_hosts" links >"$out" 2>&1 || { cat "$out"; fail "mpirun tool_hosts links"; }
# which server is on which host: from the servers' own lines
s_h1=$(sed -nE 's/.*rank 1 of 5 .* server ([01]),.*/\1/p' "$out")
s_h2=$(sed -nE 's/.*rank 2 of 5 .* server ([01]),.*/\1/p' "$out")
[ -n "$s_h1" ] && [ -n "$s_h2" ] || { cat "$out"; fail "no server lines"; }
expect_line "$out" "^rank 0 server $s_h2 shm\$"
expect_line "$out" "^rank 0 server $s_h1 tcp from 10\.231\.$HX\.12:"
expect_line "$out" "^rank 1 server $s_h1 tcp from 10\.231\.$HX\.13:"
expect_line "$out" "^rank 1 server $s_h2 tcp from 10\.231\.$HX\.13:"
pass "shared memory between the processes of h2 only; TCP across hosts"
