#!/usr/bin/env bash
# The cluster secret on real processes (docs/security.md):
#  - a worker without the secret, and one with another secret file, are
#    refused by the coordinator (PARAMD_EAUTH, saying which), and the
#    coordinator logs the refused peer with its address (the one with
#    another secret too, though it is the one that hangs up); paramd stats
#    without the secret is refused, with it works; a worker with it trains;
#  - the secret never appears in a log;
#  - listening beyond loopback without a secret is refused, with one it
#    starts; a secret file others may read, or a short one, is refused.
# (The handshake itself, replays and fake answerers: tests/test_frame.c.)
source "$(dirname "$0")/lib.sh"
TOY=$BUILD/examples/toy
cd "$TMP"

start_coordinator 1 1
start_servers 1
(umask 077; head -c 32 /dev/urandom | base64 >"$TMP/other")

env -u PARAMD_SECRET_FILE PARAMD_COORDINATOR=$COORD PARAMD_RANK=0 "$TOY" >none.out 2>&1 \
  && fail "a worker without the secret was let in"
expect_line none.out "coordinator $COORD: this coordinator requires the cluster secret, and the peer gave none: give it the coordinator's secret file .*\(authentication failed \(cluster secret\)\)"
expect_line "$TMP/coordinator.log" "warning: closing connection from 127\.0\.0\.1:[0-9]+: this coordinator requires the cluster secret, and the peer gave none"
PARAMD_SECRET_FILE=$TMP/other PARAMD_COORDINATOR=$COORD PARAMD_RANK=0 "$TOY" >other.out 2>&1 \
  && fail "a worker with another secret was let in"
expect_line other.out "the peer did not prove it knows the cluster secret .*not talking to it \(authentication failed \(cluster secret\)\)"
# The dialer with another secret leaves on checking the coordinator's
# proof; the coordinator still logs it, once, with the address.
expect_line "$TMP/coordinator.log" "warning: closing connection from 127\.0\.0\.1:[0-9]+: it closed the connection during authentication, before proving it knows the cluster secret"
pass "no secret, another secret: refused, saying which; the coordinator logs the peer's address"

env -u PARAMD_SECRET_FILE "$PARAMD" stats --coordinator "$COORD" >stats.none 2>&1 \
  && fail "paramd stats without the secret was answered"
expect_line stats.none "requires the cluster secret"
"$PARAMD" stats --coordinator "$COORD" --secret-file "$PARAMD_SECRET_FILE" >stats.ok 2>&1 \
  || fail "paramd stats with the secret: $(cat stats.ok)"
expect_line stats.ok "^server 0 at 127\.0\.0\.1:[0-9]+:"
PARAMD_COORDINATOR=$COORD PARAMD_RANK=0 "$TOY" >ok.out 2>&1 || fail "the worker with the secret: $(cat ok.out)"
expect_line ok.out "^final params \(async, mean\):( 100\.0){10}\$"
wait "$COORD_PID" || fail "the coordinator did not end cleanly"
pass "paramd stats refused without the secret, answered with it; a worker with it trained exactly"

secret=$(tr -d '\n' <"$PARAMD_SECRET_FILE")
[ ${#secret} -ge 16 ] || fail "the created secret is ${#secret} bytes"
[ "$(stat -c %a "$PARAMD_SECRET_FILE")" = 600 ] || fail "the secret file is not mode 600"
if grep -rqF -- "$secret" "$TMP"/*.log "$TMP"/*.out stats.*; then fail "the secret appears in a log"; fi
pass "the coordinator made the secret file (mode 600); it appears in no log or output"

env -u PARAMD_SECRET_FILE "$PARAMD" coordinator --servers 1 --workers 1 --listen 0.0.0.0:0 \
  >open.err 2>&1 && fail "listening on 0.0.0.0 without a secret was allowed"
expect_line open.err "0\.0\.0\.0 is reachable from other machines, and without a cluster secret"
cp "$PARAMD_SECRET_FILE" "$TMP/shared"; chmod 644 "$TMP/shared"
"$PARAMD" coordinator --servers 1 --workers 1 --secret-file "$TMP/shared" >mode.err 2>&1 \
  && fail "a secret file others can read was accepted"
expect_line mode.err "secret file $TMP/shared can be read or written by other users \(mode 0644\).*chmod 600 it"
(umask 077; echo short >"$TMP/short")
"$PARAMD" coordinator --servers 1 --workers 1 --secret-file "$TMP/short" >short.err 2>&1 \
  && fail "a 5-byte secret was accepted"
expect_line short.err "secret file $TMP/short holds 5 bytes, fewer than 16"
rm -f "$TMP/ready"; mkfifo "$TMP/ready"
"$PARAMD" coordinator --servers 1 --workers 1 --listen 0.0.0.0:0 --ready-fd 3 \
  --secret-file "$PARAMD_SECRET_FILE" 3>"$TMP/ready" >wide.log 2>&1 &
WIDE=$!; PIDS+=($WIDE)
read -r -t 20 addr <"$TMP/ready" || fail "a coordinator on 0.0.0.0 with a secret did not start: $(cat wide.log)"
kill -TERM $WIDE; wait $WIDE 2>/dev/null
pass "0.0.0.0 refused without a secret, started with one ($addr); world-readable and short secrets refused"
