#!/usr/bin/env bash
# A server that stops answering (SIGSTOP: its process and its sockets stay,
# so TCP sees nothing wrong) is noticed and named, not waited on in
# silence (docs/operations.md, "A silent server"):
#  - servers send the coordinator a heartbeat every second; after
#    --heartbeat-timeout-ms without one, the coordinator logs that server
#    as silent, with its address;
#  - paramd status --json shows it (silent_s > 0) and, since the server
#    cannot answer, that server's error says its handshake timed out,
#    instead of hanging;
#  - after SIGCONT the coordinator says it speaks again and the sync toy
#    finishes exactly.
# transports: tcp
source "$(dirname "$0")/lib.sh"
TOY=$BUILD/examples/toy

start_coordinator 2 1 --heartbeat-timeout-ms 1500
start_servers 2
PARAMD_COORDINATOR=$COORD PARAMD_RANK=0 "$TOY" --consistency sync --iters 3000 --sleep-ms 1 \
  >"$TMP/toy.out" 2>&1 &
TOY_PID=$!; PIDS+=($TOY_PID)
# until the toy has pushed (an event: the servers count it)
for ((i = 0; i < 400; i++)); do
  "$PARAMD" stats --coordinator "$COORD" 2>/dev/null | grep -Eq "^  table 1 .*pushes [1-9]" && break
  sleep 0.02
done
kill -STOP "${SERVER_PIDS[1]}"
wait_line "$TMP/coordinator.log" "server [01] \(127\.0\.0\.1:[0-9]+\) has sent no heartbeat for [0-9.]+ s: stopped or hung\?" 20
k=$(sed -nE 's/.*server ([01]) \(127\.0\.0\.1:[0-9]+\) has sent no heartbeat.*/\1/p' "$TMP/coordinator.log" | head -1)
addr=$(sed -nE "s/.*server $k \((127\.0\.0\.1:[0-9]+)\) has sent no heartbeat.*/\1/p" "$TMP/coordinator.log" | head -1)
# the stopped process is the one listening at that address
pid=$(ss -Htlnp "sport = :${addr##*:}" | sed -nE 's/.*pid=([0-9]+).*/\1/p' | head -1)
[ "$pid" = "${SERVER_PIDS[1]}" ] || fail "the coordinator named server $k at $addr (pid ${pid:-?}), not the stopped one (pid ${SERVER_PIDS[1]})"
pass "SIGSTOP of a server: the coordinator named it (server $k, $addr) as silent"

timeout 60 "$PARAMD" status --coordinator "$COORD" --json >"$TMP/st.json" 2>"$TMP/st.err" \
  || fail "paramd status with a stopped server: $(cat "$TMP/st.err")"
python3 - "$TMP/st.json" "$k" <<'PY' || fail "paramd status --json: $(cat "$TMP/st.json")"
import json, sys
st = json.load(open(sys.argv[1]))
k = int(sys.argv[2])
s = [x for x in st["servers"] if x["index"] == k][0]
assert s["silent_s"] > 1.0, s
assert "did not answer its handshake" in (s["error"] or ""), s
other = [x for x in st["servers"] if x["index"] != k][0]
assert other["silent_s"] == 0 and other["error"] is None, other
PY
pass "paramd status --json: server $k silent, its error says why; the other one fine; no hang"

kill -CONT "${SERVER_PIDS[1]}"
wait_line "$TMP/coordinator.log" "server $k \($addr\) speaks again after [0-9.]+ s of silence" 20
wait "$TOY_PID" || fail "the toy failed after SIGCONT: $(cat "$TMP/toy.out")"
expect_line "$TMP/toy.out" "^final params \(sync, mean\):( 3000\.0){10}\$"
wait "$COORD_PID" || fail "the coordinator did not end cleanly"
pass "SIGCONT: the coordinator says it speaks again; the toy finished exactly"
