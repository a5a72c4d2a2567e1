#!/usr/bin/env bash
# paramd bench, in a tiny configuration: the JSON lines parse, every
# expected configuration is there once with positive throughputs, latencies
# and ratios (and the small-request figure, coalescing on and off, once per
# transport), the pushed values were verified, and bad arguments give a
# clear message and exit 2.  No timing is asserted: this is a benchmark's
# plumbing test, not a benchmark.
source "$(dirname "$0")/lib.sh"

out=$TMP/bench.json
"$PARAMD" bench --quick --json --sizes 4K,64K --servers 1,2 --workers 1,2 \
    --seconds 0.05 >"$out" 2>"$TMP/bench.err" || { cat "$TMP/bench.err"; fail "paramd bench failed"; }
pass "paramd bench --quick --json ran"

check() {
  if command -v python3 >/dev/null; then
    python3 - "$out" <<'EOF'
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip()]
recs = [json.loads(l) for l in lines]          # every line is one JSON object
def fail(msg):
    print("bad bench output:", msg); sys.exit(1)
def pos(r, *keys):
    for k in keys:
        v = r.get(k)
        if not isinstance(v, (int, float)) or not v > 0:
            fail("%s=%r is not a positive number in %s" % (k, v, r))
by = {}
for r in recs:
    by.setdefault(r["bench"], []).append(r)
if len(by.get("run", [])) != 1: fail("expected one run record")
sizes, shapes = [4096, 65536], [(1, 1), (1, 2), (2, 1), (2, 2)]
ceil = {(r["what"], r.get("size"), r.get("op")) for r in by.get("ceiling", [])}
for r in by.get("ceiling", []):
    pos(r, "bytes_per_s") if r["what"] != "tcp_pingpong" else pos(r, "p50_us", "p99_us", "samples")
for s in sizes:
    for what in ("tcp_stream", "memcpy"):
        if (what, s, None) not in ceil: fail("no %s ceiling for size %d" % (what, s))
    for what in ("shm_copy", "shm_stream"):
        if (what, s, None) not in ceil: fail("no %s ceiling for size %d" % (what, s))
for op in ("pull", "push"):
    if ("tcp_pingpong", 4096, op) not in ceil: fail("no ping-pong ceiling for " + op)
dense = {}
for r in by.get("dense", []):
    key = (r["transport"], r["op"], r["servers"], r["workers"], r["size"])
    if key in dense: fail("duplicate %s" % (key,))
    dense[key] = r
    pos(r, "reps", "seconds", "bytes", "bytes_per_s", "ratio_tcp", "ratio_memcpy")
    if r["transport"] == "shm": pos(r, "ratio_shm_copy", "ratio_shm_stream")
    if r["verified"] != 1: fail("not verified: %s" % r)
for tr in ("tcp", "shm"):
    for op in ("push", "pull", "pushpull"):
        for S, W in shapes:
            for s in sizes:
                if (tr, op, S, W, s) not in dense:
                    fail("missing dense %s %s S=%d W=%d size=%d" % (tr, op, S, W, s))
if len(dense) != 2 * 3 * len(shapes) * len(sizes): fail("unexpected dense records")
lat = {}
for r in by.get("latency", []):
    lat[(r["transport"], r["op"], r["servers"], r["workers"])] = r
    pos(r, "samples", "p50_us", "p99_us", "ceiling_p50_us", "ratio_p50", "ratio_p99")
    if r["p99_us"] < r["p50_us"]: fail("p99 below p50: %s" % r)
for tr in ("tcp", "shm"):
    for op in ("pull", "push"):
        for S, W in shapes:
            if (tr, op, S, W) not in lat: fail("missing latency %s %s S=%d W=%d" % (tr, op, S, W))
small = {}
for r in by.get("small", []):
    if r["transport"] in small: fail("duplicate small record %s" % r)
    small[r["transport"]] = r
    pos(r, "reqs_on", "seconds_on", "reqs_per_s_on", "reqs_off", "seconds_off",
        "reqs_per_s_off", "ratio_on_off")
    if r["window"] != 64 or r["size"] != 4096 or r["servers"] != 1: fail("small: %s" % r)
    if r["verified"] != 1: fail("small not verified: %s" % r)
if sorted(small) != ["shm", "tcp"]: fail("small records for %s" % sorted(small))
print("bench output ok: %d records" % len(recs))
EOF
  elif command -v jq >/dev/null; then
    jq -e . "$out" >/dev/null || fail "output is not JSON lines"
    n=$(jq -s '[.[] | select(.bench == "dense" and .bytes_per_s > 0 and .ratio_tcp > 0 and .verified == 1)] | length' "$out")
    [ "$n" = 48 ] || fail "expected 48 verified dense records, got $n"
    n=$(jq -s '[.[] | select(.bench == "latency" and .p50_us > 0 and .ratio_p50 > 0)] | length' "$out")
    [ "$n" = 16 ] || fail "expected 16 latency records, got $n"
    n=$(jq -s '[.[] | select(.bench == "small" and .reqs_per_s_on > 0 and .reqs_per_s_off > 0 and .verified == 1)] | length' "$out")
    [ "$n" = 2 ] || fail "expected 2 small-request records, got $n"
  else
    fail "neither python3 nor jq is installed to parse JSON"
  fi
}
check || { cat "$out"; fail "bench output"; }
pass "every configuration present, positive and verified"

# key=value output and the readable table
"$PARAMD" bench --quick --sizes 4K --servers 1 --workers 1 --seconds 0.02 --ops pull,latency,small \
    --transport tcp >"$TMP/kv.out" 2>"$TMP/kv.err" || { cat "$TMP/kv.err"; fail "key=value run"; }
expect_line "$TMP/kv.out" '^bench=dense transport=tcp op=pull servers=1 workers=1 size=4096 reps=[0-9]+ '
expect_line "$TMP/kv.out" '^bench=latency transport=tcp op=pull .* p50_us=[0-9.e+]+ '
expect_line "$TMP/kv.out" '^dense throughput over TCP'
expect_line "$TMP/kv.out" '^bench=small transport=tcp servers=1 workers=1 size=4096 window=64 .* reqs_per_s_on=[0-9.e+]+ .* reqs_per_s_off=[0-9.e+]+ ratio_on_off=[0-9.e+]+ verified=1$'
expect_line "$TMP/kv.out" '^small requests: one worker, windows of 64 async 4 KiB pushes'
expect_line "$TMP/kv.out" '^tcp +[0-9]+ +[0-9]+ +[0-9.]+x$'
! grep -Eq '^bench=dense .*op=push(pull)? ' "$TMP/kv.out" || fail "--ops pull,latency ran push"
! grep -q 'shm' "$TMP/kv.out" || fail "--transport tcp reported shm"
pass "key=value lines and the table"

# bad arguments: exit 2 with a message naming the problem
bad() {
  local want=$1; shift
  "$PARAMD" bench "$@" >"$TMP/bad.out" 2>&1; rc=$?
  [ $rc = 2 ] || { cat "$TMP/bad.out"; fail "paramd bench $* exited $rc, expected 2"; }
  expect_line "$TMP/bad.out" "$want"
}
bad "--sizes: '3X' is not a size" --sizes 4K,3X
bad "--sizes: '6' is not a size in bytes \(a multiple of 4" --sizes 6
bad "--sizes: '2G' is not a size" --sizes 2G
bad "--servers: '0' is not a number in 1..64" --servers 1,0
bad "--workers: 'many' is not a number" --workers many
bad "--seconds '-1' is not a number" --seconds -1
bad "--ops: unknown 'fly' \(push, pull, pushpull, latency, small\)" --ops push,fly
bad "--transport: unknown 'rdma'" --transport rdma
bad "--chunk-bytes '12' is not a size" --chunk-bytes 12
bad "unrecognized option '--bogus'" --bogus
bad "unexpected argument 'extra'" extra
bad "needs about .* GiB" --sizes 1G --workers 64
"$PARAMD" bench --help | grep -q -- "--max-reps" || fail "--help does not document --max-reps"
pass "bad arguments rejected with a message"
