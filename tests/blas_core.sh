#!/usr/bin/env bash
# blas_core.sh - run a test program on one OpenBLAS core type's kernels,
# or report it skipped (exit 77, ctest's SKIP_RETURN_CODE) with the reason.
#
#   bash tests/blas_core.sh CORE PROGRAM [ARGS...]
#
# OpenBLAS picks its kernels for the CPU it runs on; OPENBLAS_CORETYPE=CORE
# makes it take CORE's instead, which is how ctest runs test_model on the
# kernels of CPUs it is not running on (test_model.Haswell, ...; see
# docs/testing.md).  Two things can keep that from happening, and each is
# a skip, never a pass:
#   - this CPU cannot execute CORE's kernels (AVX-512 ones on a CPU
#     without AVX-512): checked here, against /proc/cpuinfo, before
#     running anything, with the table below; and should the table miss a
#     feature, a SIGILL from the program is reported the same way;
#   - this OpenBLAS cannot select CORE (an older release does not know the
#     name and falls back to the CPU's own kernels): the program checks
#     that itself (test_model --blas compares openblas_get_corename()).
set -u
core=${1:?usage: blas_core.sh CORE PROGRAM [ARGS...]}
shift
[ $# -ge 1 ] || { echo "usage: blas_core.sh CORE PROGRAM [ARGS...]" >&2; exit 2; }

# The CPU flags (as /proc/cpuinfo names them) each core type's kernels
# use, on the safe side: a flag too many skips a run that could have
# worked, a flag too few crashes it.
case ${core,,} in
  prescott)                 need="sse2 pni" ;;
  core2|atom|nano)          need="sse2 pni ssse3" ;;
  penryn|dunnington)        need="sse2 pni ssse3 sse4_1" ;;
  nehalem)                  need="sse2 pni ssse3 sse4_1 sse4_2" ;;
  barcelona)                need="sse2 pni sse4a" ;;
  bobcat)                   need="sse2 pni ssse3 sse4a" ;;
  opteron|opteron_sse3)     need="sse2 3dnow 3dnowext" ;;
  sandybridge)              need="sse4_2 avx" ;;
  bulldozer|piledriver|steamroller|excavator)
                            need="sse4_2 avx fma4" ;;
  haswell|zen)              need="avx avx2 fma" ;;
  skylakex)                 need="avx2 fma avx512f avx512bw avx512dq avx512vl" ;;
  cooperlake)               need="avx2 fma avx512f avx512bw avx512dq avx512vl avx512_bf16" ;;
  sapphirerapids)           need="avx2 fma avx512f avx512bw avx512dq avx512vl avx512_bf16 amx_bf16 amx_tile" ;;
  *) echo "blas_core.sh: no CPU flags known for core type '$core': add it to the table" >&2
     exit 2 ;;
esac

flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
missing=""
for f in $need; do
  [[ $flags == *" $f "* ]] || missing+=" $f"
done
if [ -n "$missing" ]; then
  echo "SKIPPED: OpenBLAS's $core kernels need the CPU features$missing, which this CPU lacks (/proc/cpuinfo)"
  exit 77
fi

OPENBLAS_CORETYPE=$core "$@"
rc=$?
if [ $rc -eq 132 ]; then # 128 + SIGILL
  echo "SKIPPED: OpenBLAS's $core kernels hit an instruction this CPU lacks (SIGILL), although it has every feature tests/blas_core.sh lists for them ($need): add the missing one there"
  exit 77
fi
exit $rc
