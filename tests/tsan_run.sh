#!/usr/bin/env bash
# tests/tsan_run.sh ROOT CMD [ARGS] - run one test of the ThreadSanitizer
# build (make tsan; CMakeLists.txt puts this in front of every test).
#
# An integration test starts servers, coordinators and workers in the
# background and judges them by what they answer, not by their exit
# status, so a report printed by one of them would go unseen.  Here every
# process the test starts writes its reports to a fresh directory under
# ROOT (TSAN_OPTIONS log_path, inherited by children), and the test fails
# if any report was written, with the reports in its output.
set -u
root=${1:?usage: $0 ROOT CMD [ARGS]}; shift
mkdir -p "$root"
dir=$(mktemp -d "$root/XXXXXX")
export TSAN_OPTIONS="${TSAN_OPTIONS:-} log_path=$dir/report log_exe_name=1"
"$@"
rc=$?
shopt -s nullglob
reports=("$dir"/report*)
if [ ${#reports[@]} -gt 0 ]; then
  for r in "${reports[@]}"; do echo "==== $r"; cat "$r"; done
  echo "FAIL: ${#reports[@]} process(es) wrote ThreadSanitizer reports (above)" >&2
  [ "$rc" -eq 0 ] && rc=1
else
  rmdir "$dir"
fi
exit "$rc"
