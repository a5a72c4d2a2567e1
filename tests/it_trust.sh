#!/usr/bin/env bash
# Roles cannot be claimed (docs/security.md, "What was tested"): a cluster
# with the secret, attacked by a member that has the secret but not the
# coordinator's grant (tests/tool_trust.c, mode impostor), while a real
# worker holds rank 1 and waits on a FIFO with its connections open:
#  - the holder's rank claimed at every server without a ticket and with
#    another worker's genuine ticket, at the coordinator by REG_WORKER and
#    HEARTBEAT: refused, each server and the coordinator logging each
#    refusal once with the peer's address; the holder ends with exactly
#    the values it expects; the same claim with a SPARSE_PUSH and a BATCH
#    of a PUSH written behind its last handshake frame: refused, closed,
#    neither request read;
#  - a fake server's REG_SERVER after the servers registered: refused and
#    logged, the map still names only the real servers;
#  - rejoins to a coordinator that took no cluster back: SERVER_REJOIN
#    from a tool, from a "server" with another cluster's key, one whose
#    rank comes before its head; WORKER_REJOIN with the impostor's own
#    genuine ticket, and naming the holder's rank: refused and logged, the
#    map unchanged;
#  - TABLE_CREATE, SET, PUSH, SPARSE_PUSH and a BATCH of a PUSH and a
#    SPARSE_PUSH from a tool: error replies, the connection answers on, the
#    values (dense "h", sparse "s") pulled back as a worker unchanged;
#    TABLE_OPEN from a tool; tables past the coordinator's and a server's
#    --max-tables;
#  - the shared-memory socket: without the secret, with another one, as
#    the holder's rank without a ticket, a request before HELLO; as a tool
#    REGION_MAP, and PUSH_REGION of a region a worker connection mapped:
#    refused, each logged once naming the peer process;
#  - over TCP another secret: the dialer leaves when it checks the
#    answerer's proof, and the answerer logs that once with the address.
source "$(dirname "$0")/lib.sh"
TT=$BUILD/tests/tool_trust
cd "$TMP"

start_coordinator 2 2 --max-tables 3
start_servers 2 --max-tables 4
mkfifo go
PARAMD_COORDINATOR=$COORD PARAMD_RANK=1 "$TT" holder "$TMP/go" >holder.out 2>&1 &
HOLDER=$!; PIDS+=($HOLDER)
wait_line holder.out "^holding rank 1\$" 30

PARAMD_COORDINATOR=$COORD PARAMD_RANK=0 "$TT" impostor 1 >impostor.out 2>&1 &
IMP=$!; PIDS+=($IMP)
wait $IMP || { cat impostor.out >&2; fail "the impostor's probes (above)"; }
expect_line impostor.out "^trust ok: impostor\$"
timeout 20 bash -c 'echo go >"$1"' _ go || fail "the holder is not reading its FIFO: $(cat holder.out)"
wait $HOLDER || { cat holder.out >&2; fail "the holder was disturbed (above)"; }
expect_line holder.out "^holder ok: rank 1 kept its connections; h is 2 everywhere\$"
wait "$COORD_PID" || fail "the coordinator did not end cleanly: $(cat coordinator.log)"
for p in "${SERVER_PIDS[@]}"; do wait "$p" || fail "a server did not end cleanly"; done
pass "every probe refused with its reason; the holder of rank 1 ended with exactly its values"

# times_in FILE N REGEX: exactly N lines of FILE match REGEX
times_in() {
  local n; n=$(grep -Ec -- "$3" "$1")
  [ "$n" = "$2" ] || { echo "--- $1:" >&2; cat "$1" >&2; fail "$n lines match '$3' in $1, expected $2"; }
}
# once_in FILE REGEX: exactly one line of FILE matches REGEX
once_in() { times_in "$1" 1 "$2"; }
A='127\.0\.0\.1:[0-9]+'
SHM="shm peer pid $IMP uid [0-9]+"
for k in 0 1; do
  L=server.$k.log
  # twice: once alone, once with requests written behind it
  times_in $L 2 "warning: closing connection from $A: a worker's connection to a server must show the ticket the coordinator gave it for rank 1"
  once_in $L "warning: closing connection from $A: the ticket shown for rank 1 is not one this cluster's coordinator gave"
  once_in $L "warning: closing connection from $A: the ticket shown for rank 0 is not one this cluster's coordinator gave"
  once_in $L "warning: closing connection from $A: a server does not take connections from a server"
  times_in $L 2 "rejected TABLE_CREATE from $A \(rank -1\): only workers define tables"
  once_in $L "rejected SET from $A \(rank -1\): only workers write values"
  # PUSH and SPARSE_PUSH: alone, then inside a BATCH
  times_in $L 2 "rejected PUSH from $A \(rank -1\): only workers push"
  times_in $L 2 "rejected SPARSE_PUSH from $A \(rank -1\): only workers push"
  once_in $L "rejected TABLE_CREATE from $A \(rank 0\): table 61: this server holds 4 tables, its limit"
  once_in $L "warning: closing connection from $SHM: this server requires the cluster secret, and the peer gave none"
  once_in $L "warning: closing connection from $SHM: it closed the connection during authentication"
  once_in $L "warning: closing connection from $SHM: first frame is SET, not HELLO"
  once_in $L "warning: closing connection from $SHM: a worker's connection to a server must show the ticket"
  once_in $L "rejected TABLE_CREATE from $SHM \(rank -1\): only workers define tables"
  once_in $L "rejected REGION_MAP from $SHM \(rank -1\): only workers map shared buffers"
  once_in $L "rejected PUSH_REGION from $SHM \(rank -1\): no region 7 is mapped"
  once_in $L "warning: closing connection from $A: this server requires the cluster secret, and the peer gave none"
  once_in $L "warning: closing connection from $A: it closed the connection during authentication, before proving it knows the cluster secret"
done
L=coordinator.log
once_in $L "rejected REG_WORKER from $A: rank 1 is taken by a live worker"
once_in $L "rejected REG_WORKER from $A: all 2 worker slots are taken by live workers"
once_in $L "warning: closing connection from $A: HEARTBEAT for rank 1 from a connection that did not show the ticket"
once_in $L "rejected REG_SERVER from $A: the cluster already has its 2 servers"
once_in $L "rejected TABLE_OPEN from $A: TABLE_OPEN from a connection that did not register as a worker"
once_in $L "rejected SERVER_REJOIN from $A: SERVER_REJOIN from a connection that is not an unregistered server"
once_in $L "rejected SERVER_REJOIN from $A: this coordinator started a new cluster \(2 servers registered afresh\)"
once_in $L "rejected SERVER_REJOIN from $A: malformed SERVER_REJOIN: no head before record 82"
once_in $L "rejected WORKER_REJOIN from $A: this coordinator did not take back the cluster rank 0 belonged to"
once_in $L "rejected WORKER_REJOIN from $A: WORKER_REJOIN from a connection that did not show that rank's ticket"
once_in $L "rejected TABLE_OPEN from $A: table 'q2': the cluster has 3 tables, the coordinator's limit \(--max-tables 3\)"
once_in $L "warning: closing connection from $A: this coordinator requires the cluster secret, and the peer gave none"
once_in $L "warning: closing connection from $A: it closed the connection during authentication"
if grep -q "removed from the cluster" coordinator.log; then fail "a worker was removed: $(cat coordinator.log)"; fi
secret=$(tr -d '\n' <"$PARAMD_SECRET_FILE")
if grep -qF -- "$secret" ./*.log ./*.out; then fail "the secret appears in a log"; fi
pass "each refusal logged once by its answerer with the peer's address (the shm peer's pid); no secret in any log"
