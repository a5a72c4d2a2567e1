#!/usr/bin/env bash
# `make install` into a DESTDIR, used as a user would: every file in its
# place (program, libparamd.so.X.Y.Z with its soname and links,
# libparamd.a, both headers, paramd.pc, the CMake package, the plugin, the
# man page, the Python package); examples/toy.c compiled with
# `pkg-config --cflags --libs paramd` against the staged tree and run by
# the staged paramd (exact 100.0 in sync mode), and again through
# find_package(paramd) with the static library; the man page shows each
# command's --help; the installed Python package imported by a clean
# interpreter (empty environment, outside the source tree) finds the
# staged library and runs the toy.
source "$(dirname "$0")/lib.sh"
SRC=$(cd "$(dirname "$0")/.." && pwd)
cache() { sed -n "s/^$1:[A-Z]*=//p" "$BUILD/CMakeCache.txt"; }
PY=$(cache PARAMD_PYTHON)
CFLAGS_SAN="" PY_SAN=()
if [ "$(cache PARAMD_SANITIZE)" = ON ]; then  # as CMakeLists.txt does for the Python tests
  CFLAGS_SAN="-fsanitize=address,undefined"
  PY_SAN=("LD_PRELOAD=$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
          ASAN_OPTIONS=detect_leaks=0)
fi
STAGE=$TMP/stage
P=$STAGE/usr/local

DESTDIR=$STAGE cmake --install "$BUILD" --prefix /usr/local >"$TMP/install.log" 2>&1 \
  || { cat "$TMP/install.log"; fail "cmake --install"; }
V=$(sed -n 's/^Version: //p' "$P/lib/pkgconfig/paramd.pc")
MM=${V%.*}
for f in bin/paramd include/paramd.h include/paramd_rule.h lib/libparamd.a \
         lib/libparamd.so.$V lib/pkgconfig/paramd.pc lib/cmake/paramd/paramdConfig.cmake \
         lib/cmake/paramd/paramdConfigVersion.cmake lib/paramd/plugins/clip_sgd.so \
         share/man/man1/paramd.1 share/doc/paramd/examples/toy.c \
         share/doc/paramd/examples/python/toy.py; do
  [ -f "$P/$f" ] || fail "not installed: $f"
done
[ "$(readlink "$P/lib/libparamd.so.$MM")" = "libparamd.so.$V" ] || fail "libparamd.so.$MM link"
[ "$(readlink "$P/lib/libparamd.so")" = "libparamd.so.$MM" ] || fail "libparamd.so link"
objdump -p "$P/lib/libparamd.so.$V" | grep -Eq "SONAME +libparamd\.so\.$MM\$" || fail "soname"
grep -q "^prefix=/usr/local$" "$P/lib/pkgconfig/paramd.pc" || fail "paramd.pc prefix"
pass "installed into DESTDIR: soname libparamd.so.$MM, version $V"

# pkg-config against the staged tree (the sysroot maps /usr/local to it)
export PKG_CONFIG_PATH=$P/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$STAGE
flags=$(pkg-config --cflags --libs paramd) || fail "pkg-config paramd"
gcc -Wall -Werror $CFLAGS_SAN -o "$TMP/toy" "$SRC/examples/toy.c" $flags \
  || fail "toy.c does not compile with: $flags"
LD_LIBRARY_PATH=$P/lib "$P/bin/paramd" local --servers 2 --workers 2 -- "$TMP/toy" \
    --consistency sync --sleep-ms 0 >"$TMP/toy.out" 2>&1 || { cat "$TMP/toy.out"; fail "toy"; }
expect_line "$TMP/toy.out" '\[worker 0\] final params \(sync, mean\):( 100\.0){10}$'
LD_LIBRARY_PATH=$P/lib ldd "$TMP/toy" | grep -q "libparamd.so.$MM => $P/lib/" \
  || fail "toy does not load the staged library"
pass "toy.c built with pkg-config ($flags) and run: 100.0"

# find_package(paramd), linking the static library
mkdir -p "$TMP/cm"
cat >"$TMP/cm/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.18)
project(usepd C)
find_package(paramd $MM REQUIRED)
add_executable(toy "$SRC/examples/toy.c")
target_compile_options(toy PRIVATE $CFLAGS_SAN)
target_link_options(toy PRIVATE $CFLAGS_SAN)
target_link_libraries(toy PRIVATE paramd::paramd_static)
EOF
(cmake -S "$TMP/cm" -B "$TMP/cm/b" -DCMAKE_PREFIX_PATH="$P" && cmake --build "$TMP/cm/b") \
  >"$TMP/cm.log" 2>&1 || { cat "$TMP/cm.log"; fail "find_package(paramd) build"; }
objdump -p "$TMP/cm/b/toy" | grep -q "NEEDED.*libparamd" && fail "static toy needs libparamd.so"
"$P/bin/paramd" local --servers 1 --workers 2 -- "$TMP/cm/b/toy" --sleep-ms 0 \
    >"$TMP/toy2.out" 2>&1 || { cat "$TMP/toy2.out"; fail "static toy"; }
expect_line "$TMP/toy2.out" '\[worker 0\] final params \(async, mean\):( 200\.0){10}$'
pass "find_package(paramd): paramd::paramd_static, toy 200.0"

# the man page holds every command's --help
MANTXT=$TMP/man.txt
MANWIDTH=200 man -l "$P/share/man/man1/paramd.1" >"$MANTXT" 2>"$TMP/man.err" \
  || { cat "$TMP/man.err"; fail "man -l paramd.1"; }
[ -s "$TMP/man.err" ] && { cat "$TMP/man.err"; fail "man page warnings"; }
for cmd in local train plot bench stats coordinator server; do
  first=$("$P/bin/paramd" $cmd --help | head -1)
  grep -qF -- "$first" "$MANTXT" || fail "man page lacks '$first'"
done
pass "paramd.1 shows every command's --help"

# the Python package, from a clean interpreter
SITE=$(find "$STAGE" -path '*-packages/paramd/__init__.py' | head -1)
[ -n "$SITE" ] || fail "the Python package was not installed"
SITE=$(dirname "$(dirname "$SITE")")
case "$SITE" in "$P"/lib/python3*) ;; *) fail "Python package in $SITE, not under $P/lib";; esac
grep -q "^LIBRARY = \"/usr/local/lib/libparamd.so.$MM\"$" "$SITE/paramd/_paths.py" \
  || fail "_paths.py: $(cat "$SITE/paramd/_paths.py")"
if ! "$PY" -c "import numpy" 2>/dev/null; then
  [ "${PARAMD_REQUIRE_PYTHON:-}" = 1 ] && fail "python3-numpy is not installed"
  echo "skipped: the Python part needs python3-numpy"
  exit 0
fi
cat >"$TMP/use.py" <<'EOF'
import os, sys, numpy as np, paramd
print("package", os.path.dirname(paramd.__file__))
print("library", paramd.library_path)
def worker(c):
    t = c.table("t", 3, rule="add")
    t.push(np.ones(3, dtype=np.float32))
    c.clock()
    c.barrier()
    return t.pull().tolist()
if __name__ == "__main__":
    with paramd.local(servers=1, workers=2, quiet=True) as cl:
        print("result", cl.run(worker))
EOF
(cd / && env -i PATH=/usr/bin:/bin PYTHONPATH="$SITE" LD_LIBRARY_PATH="$P/lib" \
   PARAMD_PROGRAM="$P/bin/paramd" "${PY_SAN[@]}" "$PY" "$TMP/use.py") >"$TMP/py.out" 2>&1 \
  || { cat "$TMP/py.out"; fail "import of the installed package"; }
expect_line "$TMP/py.out" "^package $SITE/paramd\$"
expect_line "$TMP/py.out" "^library libparamd.so.$MM\$"
expect_line "$TMP/py.out" '^result \[\[2.0, 2.0, 2.0\], \[2.0, 2.0, 2.0\]\]$'
pass "installed Python package imported from a clean interpreter, staged library, 2 workers"
