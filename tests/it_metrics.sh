#!/usr/bin/env bash
# The metrics endpoints (--metrics, docs/operations.md): what the
# coordinator and a server serve passes `promtool check metrics`; a real
# Prometheus scrapes a live cluster and its counters are what the test
# did (pushes, bytes, late pushes dropped); junk, a slow reader and many
# connections at the endpoint never stall training.  Skipped (77) where
# Debian's prometheus package is not installed.
source "$(dirname "$0")/lib.sh"
command -v promtool >/dev/null && command -v prometheus >/dev/null ||
  { echo "skip: promtool and prometheus not installed (apt-get install prometheus)"; exit 77; }

# metrics_addr LOG: the endpoint's host:port from the line a role logs
metrics_addr() {
  wait_line "$1" "metrics at http://"
  grep -o 'metrics at http://[^/]*' "$1" | head -1 | sed 's|metrics at http://||'
}

# 3 workers, sync with backup=1 (tool_worker backup T): 2 workers push
# every clock, the third's pushes come late and are dropped.
T=20
start_coordinator 1 3 --persist --metrics 127.0.0.1:0
start_servers_m() {
  "$PARAMD" server --coordinator "$COORD" --metrics 0 >>"$TMP/server.0.log" 2>&1 &
  SERVER_PID=$!; PIDS+=($SERVER_PID)
}
start_servers_m
CM=$(metrics_addr "$TMP/coordinator.log")
SM=$(metrics_addr "$TMP/server.0.log")
for r in 0 1 2; do
  PARAMD_COORDINATOR=$COORD PARAMD_RANK=$r "$BUILD/tests/tool_worker" backup $T \
    >"$TMP/b$r.out" 2>&1 &
  BW[$r]=$!
done
for r in 0 1 2; do wait ${BW[$r]} || fail "worker $r: $(cat "$TMP/b$r.out")"; done
pass "backup workers ran ($T clocks)"

curl -sf "http://$SM/metrics" >"$TMP/server.prom" || fail "GET server metrics"
curl -sf "http://$CM/metrics" >"$TMP/coord.prom" || fail "GET coordinator metrics"
promtool check metrics <"$TMP/server.prom" >"$TMP/pc.1" 2>&1 || fail "promtool (server): $(cat "$TMP/pc.1")"
promtool check metrics <"$TMP/coord.prom" >"$TMP/pc.2" 2>&1 || fail "promtool (coordinator): $(cat "$TMP/pc.2")"
pass "promtool check metrics accepts both endpoints"

# What the test did, in the server's own counters (the backup tool: each
# of the 3 workers pushes table "b" (N floats) once per clock, T clocks).
drops=$(awk '/^paramd_table_late_pushes_dropped_total/ {print $2}' "$TMP/server.prom")
[ "$drops" = "$T" ] || fail "late pushes dropped: '$drops', expected $T"
pushes=$(awk -F'[{} ]' '/^paramd_requests_total/ && /kind="PUSH"/ {print $NF}' "$TMP/server.prom")
tpushes=$(awk '/^paramd_table_pushes_total/ {print $2}' "$TMP/server.prom")
[ -n "$pushes" ] && [ "$pushes" = "$tpushes" ] || fail "PUSH requests $pushes, table pushes $tpushes"
bytes=$(awk '/^paramd_table_received_bytes_total/ {print $2}' "$TMP/server.prom")
reqbytes=$(awk '/^paramd_request_bytes_total/ && /kind="PUSH"/ {print $2}' "$TMP/server.prom")
[ "$reqbytes" = "$((bytes + 8 * pushes))" ] || fail "PUSH payload bytes $reqbytes != values $bytes + 8 x $pushes"
expect_line "$TMP/coord.prom" '^paramd_workers\{state="left"\} 3$'
pass "the counters match: $pushes pushes, $bytes bytes of values, $drops late pushes dropped"

# A real Prometheus scrapes both endpoints.
mkdir -p "$TMP/prom"
cat >"$TMP/prom.yml" <<EOT
global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
  - job_name: paramd
    static_configs:
      - targets: ['$CM', '$SM']
EOT
promtool check config "$TMP/prom.yml" >"$TMP/pcc" 2>&1 || fail "scrape config: $(cat "$TMP/pcc")"
prometheus --config.file="$TMP/prom.yml" --storage.tsdb.path="$TMP/prom" \
  --web.listen-address=127.0.0.1:0 >"$TMP/prometheus.log" 2>&1 &
PROM=$!; PIDS+=($PROM)
wait_line "$TMP/prometheus.log" "Server is ready to receive web requests"
PP=$(ss -Hltnp 2>/dev/null | grep "pid=$PROM," | awk '{print $4}' | head -1)
[ -n "$PP" ] || fail "cannot find the port prometheus listens on"
q() { curl -sf --get "http://$PP/api/v1/query" --data-urlencode "query=$1"; }
got=""
for i in $(seq 1 300); do # until both targets were scraped (bounded)
  got=$(q "sum(paramd_table_late_pushes_dropped_total)" | jq -r '.data.result[0].value[1] // empty')
  up=$(q 'sum(up)' | jq -r '.data.result[0].value[1] // empty')
  [ "$up" = 2 ] && [ -n "$got" ] && break
  sleep 0.2 # pacing the queries to a scraper that runs on its own 1 s clock
done
[ "$up" = 2 ] || fail "prometheus did not scrape both targets: up=$up"
[ "$got" = "$T" ] || fail "prometheus has $got late pushes dropped, expected $T"
gp=$(q 'sum(paramd_requests_total{kind="PUSH"})' | jq -r '.data.result[0].value[1]')
[ "$gp" = "$pushes" ] || fail "prometheus has $gp PUSH requests, expected $pushes"
gl=$(q 'paramd_workers{state="left"}' | jq -r '.data.result[0].value[1]')
[ "$gl" = 3 ] || fail "prometheus: workers left $gl"
pass "a real prometheus scraped the cluster and holds the same counters"
kill -TERM $PROM; wait $PROM 2>/dev/null
kill -KILL "$COORD_PID" "$SERVER_PID"; wait "$COORD_PID" "$SERVER_PID" 2>/dev/null

# Bad input at the endpoint of a new cluster while it trains: junk, a
# request head that never ends, many idle connections; the job finishes.
rm -f "$TMP/coordinator.log" "$TMP/server.0.log"
start_coordinator 1 2 --persist --metrics 127.0.0.1:0
start_servers_m
SM=$(metrics_addr "$TMP/server.0.log")
exec {junk}<>/dev/tcp/${SM%:*}/${SM##*:}
printf 'EHLO \x01\x02 junk\r\n\r\n' >&$junk
read -r -t 10 status <&$junk || fail "no answer to junk"
case "$status" in "HTTP/1.0 400"*) ;; *) fail "junk got '$status'";; esac
exec {junk}>&-
exec {slow}<>/dev/tcp/${SM%:*}/${SM##*:}
printf 'GET /metrics HTTP/1.1\r\nHost: x\r\n' >&$slow # and never the blank line
fds=()
for i in $(seq 1 60); do
  exec {fd}<>/dev/tcp/${SM%:*}/${SM##*:} || break
  fds+=($fd)
done
for r in 0 1; do
  PARAMD_COORDINATOR=$COORD PARAMD_RANK=$r "$BUILD/tests/tool_worker" ramp 100000 sync \
    >"$TMP/r$r.out" 2>&1 &
  RW[$r]=$!
done
for r in 0 1; do wait ${RW[$r]} || fail "ramp worker $r: $(cat "$TMP/r$r.out")"; done
expect_line "$TMP/r0.out" "^ramp ok"
pass "training went on with junk, a slow reader and ${#fds[@]} idle connections at the endpoint"
for fd in "${fds[@]}"; do exec {fd}>&-; done
exec {slow}>&-
curl -sf -m 20 "http://$SM/metrics" >"$TMP/after.prom" || fail "the endpoint no longer answers"
expect_line "$TMP/after.prom" "^paramd_server_up"
curl -s -o /dev/null -w '%{http_code}\n' "http://$SM/nothing" >"$TMP/404" ; expect_line "$TMP/404" "^404$"
pass "the endpoint answers again, 404 elsewhere"
