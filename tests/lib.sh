# tests/lib.sh - helpers for the integration tests (bash).  Sourced, not run.
#
# Each test gets its own temporary directory, starts real processes on
# loopback with port 0 (never a fixed port: ctest -j runs tests at once),
# learns addresses through FIFOs (no sleeps), and kills whatever it started
# on exit.
set -u
BUILD=${1:?usage: $0 BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
PARAMD=$BUILD/paramd
TMP=$(mktemp -d /tmp/paramd-test.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

# The cluster secret, the way users pass it: every process started below
# (coordinator, servers, workers, tools, paramd local) finds the file in
# PARAMD_SECRET_FILE; start_coordinator's coordinator creates it.
export PARAMD_SECRET_FILE=$TMP/secret

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# start_coordinator S W [extra args]: sets COORD (host:port), COORD_PID
start_coordinator() {
  local s=$1 w=$2; shift 2
  rm -f "$TMP/ready"; mkfifo "$TMP/ready"
  "$PARAMD" coordinator --servers "$s" --workers "$w" --ready-fd 3 \
     --secret-file "$PARAMD_SECRET_FILE" "$@" \
     3>"$TMP/ready" >>"$TMP/coordinator.log" 2>&1 &
  COORD_PID=$!; PIDS+=("$COORD_PID")
  read -r -t 20 COORD <"$TMP/ready" || fail "coordinator did not start: $(cat "$TMP/coordinator.log")"
}

# start_servers S [extra args]: starts S servers against $COORD; SERVER_PIDS
start_servers() {
  local n=$1; shift
  SERVER_PIDS=()
  for ((k = 0; k < n; k++)); do
    "$PARAMD" server --coordinator "$COORD" "$@" >>"$TMP/server.$k.log" 2>&1 &
    SERVER_PIDS+=($!); PIDS+=($!)
  done
}

# session_child SID WORD: the pid of a process of session SID (a setsid
# paramd local, train) whose command line has the word WORD (coordinator,
# server), or nothing
session_child() {
  local p
  for p in $(ps -s "$1" -o pid=); do
    tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q " $2 " && { echo "$p"; return; }
  done
}

# expect_line FILE REGEX: FILE has a line matching REGEX
expect_line() {
  grep -Eq -- "$2" "$1" || { echo "--- $1:" >&2; cat "$1" >&2; fail "no line matching '$2' in $1"; }
}

# wait_line FILE REGEX [SECONDS]: block until FILE has a line matching
# REGEX (tail -f: woken by the write, no polling), or fail after SECONDS
# [60] showing the file.
wait_line() {
  local f=$1 re=$2 t=${3:-60}
  touch "$f"
  timeout "$t" tail -n +1 -f "$f" 2>/dev/null | grep -Eq -m1 -- "$re" ||
    { echo "--- $f:" >&2; cat "$f" >&2; fail "no line matching '$re' in $f within $t s"; }
}

# refused EXPECTED-STATUS REGEX COMMAND...: COMMAND exits so, saying REGEX
refused() {
  local want=$1 re=$2; shift 2
  "$@" >"$TMP/arg.out" 2>&1; local rc=$?
  [ $rc = "$want" ] || { cat "$TMP/arg.out"; fail "'$*' exited $rc, expected $want"; }
  expect_line "$TMP/arg.out" "$re"
}

# values FILE: the toy's final params in FILE, one a line (10)
values() {
  local line; line=$(grep "final params" "$1") || { cat "$1" >&2; fail "$1: no final params"; }
  echo "$line" | awk '{ for (i = NF - 9; i <= NF; i++) print $i + 0 }'
}

# frontier ADDR: the first clock nobody pushed for yet, the largest over
# the servers of table 1 (the servers' own count), "" if unknown
frontier() {
  "$PARAMD" stats --coordinator "$1" 2>/dev/null |
    awk '/^  table 1 / { for (i = 1; i < NF; i++) if ($i == "frontier" && $(i + 1) > m) m = $(i + 1) }
         END { if (m != "") print m }'
}
# frontier_reaches ADDR N [LOG]: block until the frontier is at least N
# (a scrape every 20 ms: the condition is the servers'), or fail after
# 120 s, showing the cluster's status and LOG
frontier_reaches() {
  local end=$((SECONDS + 120)) f
  until f=$(frontier "$1"); [ -n "$f" ] && [ "$f" -ge "$2" ]; do
    if [ $SECONDS -ge $end ]; then
      "$PARAMD" status --coordinator "$1" >&2
      [ -n "${3:-}" ] && cat "$3" >&2
      fail "the frontier is '$f', never $2"
    fi
    sleep 0.02
  done
}
# wait_count FILE REGEX N: block until FILE has N lines matching REGEX
# (a look every 20 ms), or fail after 30 s showing the file
wait_count() {
  local end=$((SECONDS + 30))
  until [ "$(grep -Ec -- "$2" "$1")" -ge "$3" ]; do
    [ $SECONDS -lt $end ] || { cat "$1" >&2; fail "not $3 lines matching '$2' in $1 within 30 s"; }
    sleep 0.02
  done
}
# workers CMD...: CMD as ranks 0 and 1 against $COORD (w.RANK.out, W_PIDS)
workers() {
  W_PIDS=()
  for r in 0 1; do
    PARAMD_COORDINATOR=$COORD PARAMD_RANK=$r "$@" >"$TMP/w.$r.out" 2>&1 &
    W_PIDS+=($!); PIDS+=($!)
  done
}
workers_ok() { # WHAT: both workers exit 0
  for r in 0 1; do
    wait "${W_PIDS[$r]}" || { cat "$TMP/w.$r.out" "$TMP/coordinator.log"; fail "$1: worker $r failed"; }
  done
}
