"""test_client.py - the binding's calls against a live cluster: numpy in and
out of every call (dense and sparse, blocking and async), exact values,
every bad argument a clear exception raised before anything is sent, C
errors as the paramd.Error subclass of their code, the error table and
the version against include/paramd.h.

One cluster (2 servers, 1 worker: this process) serves the tests that
need one; a test that breaks its client uses its own."""
import os
import re

from harness import ROOT, check, eq, main, need, raises

np, = need("numpy")
import paramd                     # noqa: E402
from paramd import _lib, errors   # noqa: E402

F32 = np.float32
CL = paramd.local(servers=2, workers=1, quiet=True)
C = CL.connect(rank=0)


def test_version_matches_header():
    h = open(os.path.join(ROOT, "include", "paramd.h")).read()
    v = tuple(int(re.search(r"#define PARAMD_VERSION_%s (\d+)" % p, h).group(1))
              for p in ("MAJOR", "MINOR", "PATCH"))
    eq(tuple(int(x) for x in paramd.__version__.split(".")), v, "package version")
    eq(paramd.library_version, v, "library version")
    e = raises(ImportError, _lib.check_version, (v[0] << 16) | ((v[1] + 1) << 8), "libx.so")
    check("libx.so" in str(e) and paramd.__version__ in str(e)
          and "%d.%d.0" % (v[0], v[1] + 1) in str(e), "mismatch names both versions: %s" % e)
    _lib.check_version((v[0] << 16) | (v[1] << 8) | (v[2] + 7), "libx.so")  # a patch is fine


def test_import_errors_name_the_library():
    import subprocess
    import sys
    for lib, want in (("/nonexistent/libparamd.so", "no such file.*PARAMD_LIBRARY"),
                      (np.__file__, "cannot load the C library")):
        env = dict(os.environ, PARAMD_LIBRARY=lib)
        out = subprocess.run([sys.executable, "-c", "import paramd"], env=env,
                             capture_output=True, text=True)
        check(out.returncode != 0 and "ImportError" in out.stderr
              and re.search(want, out.stderr, re.S) and lib in out.stderr,
              "import with PARAMD_LIBRARY=%s: %s" % (lib, out.stderr[-300:]))


def test_error_table_matches_header():
    h = open(os.path.join(ROOT, "include", "paramd.h")).read()
    codes = re.findall(r"X\((E[A-Z]+), (-\d+), \"([^\"]*)\"\)", h)
    check(len(codes) >= 20, "found the X-macro list")
    for name, code, text in codes:
        code = int(code)
        cls = errors.BY_CODE.get(code)
        check(cls is not None, "a class for %s" % name)
        eq(cls.name, "PARAMD_" + name, "class name of %d" % code)
        eq(cls.name, _lib.lib.paramd_err_name(code).decode(), "paramd_err_name(%d)" % code)
        eq(cls.__doc__, _lib.lib.paramd_strerror(code).decode(), "doc of %s" % name)
        check(issubclass(cls, paramd.Error), "%s is a paramd.Error" % name)
    eq(len(errors.BY_CODE), len(codes), "no extra codes")
    check(issubclass(paramd.InvalidArgumentError, ValueError), "EINVAL is a ValueError")


def test_client_properties():
    eq((C.rank, C.num_workers, C.num_servers), (0, 1, 2), "rank, W, S")
    check(not C.closed and "rank 0" in repr(C), "repr")


def test_dense_numpy_in_and_out():
    init = np.arange(10, dtype=F32)
    t = C.table("d", 10, init=init, rule="add", consistency="async")
    eq(t.size, 10, "size")
    got = t.pull()
    check(isinstance(got, np.ndarray) and got.dtype == F32 and got.shape == (10,), "pull type")
    check(np.array_equal(got, init), "initial values %s" % got)
    out = np.zeros((2, 5), dtype=F32)                 # any shape with the right size
    check(t.pull(out=out) is out and np.array_equal(out.ravel(), init), "pull into out")
    t.push(np.ones(4, dtype=F32), offset=3)           # [3, 7) += 1
    t.push([0.5, 0.5])                                # a list is converted; [0, 2) += 0.5
    want = init + np.array([.5, .5, 0, 1, 1, 1, 1, 0, 0, 0], dtype=F32)
    check(np.array_equal(t.pull(), want), "after pushes: %s" % t.pull())
    part = t.pull(offset=6, count=3)
    check(np.array_equal(part, want[6:9]), "pull of a range")
    raises(paramd.RangeError, t.pull, offset=10)       # an empty range, as in C
    raises(paramd.DuplicatePushError, t.push, np.ones(1, dtype=F32), offset=4)  # once a clock
    C.clock()
    r = t.push_async(np.full(10, 2, dtype=F32))
    eq(r.wait(), None, "push wait")
    out = np.empty(10, dtype=F32)
    r = t.pull_async(out)
    check(r.wait() is out and np.array_equal(out, want + 2), "pull_async into out")
    check(r.done, "done")
    raises(paramd.InvalidArgumentError, r.wait, match="waited for already")
    # servers hold [0, 5) and [5, 10): [3, 7) and the whole table reach both
    eq(t.stat("pushes"), 5, "pushes counted by the servers, summed")
    eq(t.stat("rejected"), 1, "the duplicate push, rejected")
    eq(t.stat("floats", server=0) + t.stat("floats", server=1), 10, "floats per server")
    eq(t.clock, 0, "async table clock")


def test_dense_bad_arguments():
    t = C.table("bad", 8)
    IA = paramd.InvalidArgumentError
    raises(ValueError, t.push, np.ones(8), match="dtype float64.*float32")
    raises(IA, t.push, np.ones(16, dtype=F32)[::2], match="not C-contiguous")
    raises(IA, t.push, np.ones((4, 4), dtype=F32).T, match="not C-contiguous")
    raises(IA, t.push, np.ones(8, dtype=">f4"), match="dtype >f4")
    raises(IA, t.push, ["a", "b"], match="not a list of numbers")
    raises(IA, t.push, np.ones(2, dtype=F32), offset=-1, match="offset must be >= 0")
    raises(IA, t.push, np.ones(2, dtype=F32), offset=1.5, match="offset must be an integer")
    raises(IA, t.pull, out=np.zeros(8), match="dtype float64")
    raises(IA, t.pull, out=[0.0] * 8, match="must be a numpy float32 array")
    ro = np.zeros(8, dtype=F32)
    ro.flags.writeable = False
    raises(IA, t.pull, out=ro, match="read-only")
    raises(IA, t.pull, out=np.zeros(8, dtype=F32), count=4, match="out has 8 floats but count is 4")
    raises(IA, t.pull, out=np.zeros(16, dtype=F32)[::2], match="not C-contiguous")
    raises(IA, t.pull_async, out=np.zeros(3, dtype=np.int32), match="dtype int32")
    # the library's own checks come back as their classes, with its detail
    e = raises(paramd.RangeError, t.push, np.ones(4, dtype=F32), offset=6)
    eq((e.code, e.name), (-9, "PARAMD_ERANGE"), "code and name")
    check("bad" in e.message and "8" in e.message, "detail names the table: %r" % e.message)
    check(isinstance(e, IndexError), "ERANGE is an IndexError")
    raises(paramd.RangeError, t.pull, offset=9, match="past its 8 floats")
    raises(paramd.RangeError, t.pull, offset=4, count=5)
    raises(paramd.SpecMismatchError, C.table, "bad", 9)
    raises(paramd.SpecMismatchError, C.table, "bad", 8, rule="sgd")
    raises(IA, C.table, "x", 4, init=np.ones(5, dtype=F32), match="init has 5 floats, the table 4")
    raises(IA, C.table, "", 4, match="non-empty string")
    raises(IA, C.table, "x", -4, match="size must be >= 0")
    raises(IA, C.table, "x", 4, rule="sgd lr=2", match="without spaces")
    raises(IA, C.table, "x", 4, spec=7, match="must be a string")
    raises(paramd.Error, C.table, "x", 4, rule="nosuchrule", match="nosuchrule")
    raises(IA, t.stat, "", match="non-empty")
    raises(paramd.Error, t.stat, "nosuchcounter", match="nosuchcounter")


def test_sparse_numpy_in_and_out():
    s = C.sparse_table("s", 3, rule="add", consistency="async")
    eq(s.dim, 3, "dim")
    keys = np.array([5, 1 << 40, 5], dtype=np.uint64)
    rows = s.pull(keys)
    check(rows.dtype == F32 and rows.shape == (3, 3) and not rows.any(), "new rows are zeros")
    s.push([7, 9], np.array([[1, 2, 3], [4, 5, 6]], dtype=F32))
    s.push(keys, np.ones((3, 3), dtype=F32))                # key 5 twice: summed
    out = np.empty((4, 3), dtype=F32)
    check(s.pull([7, 9, 5, 1 << 40], out=out) is out, "pull into out")
    want = np.array([[1, 2, 3], [4, 5, 6], [2, 2, 2], [1, 1, 1]], dtype=F32)
    check(np.array_equal(out, want), "rows: %s" % out)
    r = s.push_async(np.array([9], dtype=np.uint64), np.full((1, 3), 10, dtype=F32))
    eq(r.wait(), None, "push_async")
    r = s.pull_async([9])
    check(np.array_equal(r.wait(), [[14, 15, 16]]), "pull_async")
    eq(s.pull([]).shape, (0, 3), "no keys")
    eq(s.stat("dim"), 3, "dim counter")
    check(s.stat("rows") == 4, "4 rows held over the servers, got %d" % s.stat("rows"))


def test_sparse_bad_arguments():
    s = C.sparse_table("sb", 2)
    IA = paramd.InvalidArgumentError
    raises(IA, s.pull, np.array([1, 2], dtype=np.int64), match="keys has dtype int64.*uint64")
    raises(IA, s.pull, np.array([1, 2, 3, 4], dtype=np.uint64)[::2], match="not C-contiguous")
    raises(IA, s.pull, np.zeros((2, 2), dtype=np.uint64), match="keys must be 1-D")
    raises(IA, s.pull, [1, -2], match="-2 is not an integer in 0..2\\^64-1")
    raises(IA, s.pull, [1, 2.5], match="2.5 is not an integer")
    raises(IA, s.pull, [1, 2], out=np.zeros((2, 3), dtype=F32), match="need \\(2, 2\\)")
    raises(IA, s.push, [1, 2], np.zeros((2, 3), dtype=F32), match="grads has shape \\(2, 3\\)")
    raises(IA, s.push, [1, 2], np.zeros(4, dtype=F32), match="need \\(2, 2\\)")
    raises(IA, s.push, [1, 2], np.zeros((2, 2)), match="float64")
    raises(IA, s.push_async, [1], np.zeros((1, 2), dtype=np.float16), match="float16")
    raises(paramd.SpecMismatchError, C.sparse_table, "sb", 3)
    raises(paramd.Error, C.sparse_table, "sx", 0, match="dim|1..65536")


def test_shared_arrays():
    a = C.alloc((4, 5))
    check(a.dtype == F32 and a.shape == (4, 5) and not a.any(), "zeroed float32")
    check(C.is_shared(a) and C.is_shared(a[1]) and not C.is_shared(np.zeros(3, F32)),
          "is_shared")
    t = C.table("sh", 20, init=np.arange(20, dtype=F32))
    t.pull(out=a)
    check(np.array_equal(a.ravel(), np.arange(20)), "pull into a shared array")
    C.free(a)
    raises(paramd.InvalidArgumentError, C.free, a, match="not one alloc\\(\\) returned")
    raises(paramd.InvalidArgumentError, C.free, np.zeros(4, F32), match="not one alloc")
    raises(paramd.InvalidArgumentError, C.alloc, (3, 0), match="no elements")


def test_clock_and_barrier():
    c0 = C.current_clock
    eq(C.clock(), c0 + 1, "clock")
    eq(C.clock_to(c0 + 5), c0 + 5, "clock_to")
    eq(C.clock_to(1), c0 + 5, "clock_to never goes back")
    C.barrier()
    C.flush()


def test_connect_errors():
    e = raises(paramd.Error, paramd.connect, coordinator="127.0.0.1:1", timeout_ms=200)
    check(isinstance(e, (paramd.ConnectFailedError, paramd.TimedOutError)),
          "cannot connect: %s" % type(e).__name__)
    check("127.0.0.1:1" in str(e), "the message names the address: %s" % e)
    raises(paramd.InvalidArgumentError, paramd.connect, coordinator="a b",
           match="without spaces")
    raises(paramd.Error, paramd.connect, "nosuchoption=1", coordinator=CL.coordinator,
           match="nosuchoption")


def test_zz_close_last():
    C.close()
    check(C.closed, "closed")
    C.close()                              # harmless twice
    raises(paramd.InvalidArgumentError, C.table, "x", 4, match="client is closed")
    raises(paramd.InvalidArgumentError, C.clock, match="client is closed")
    check(CL.wait(60), "the cluster ends by itself once its one worker left")
    eq(CL.failed(), [], "the cluster's processes exited cleanly")
    CL.stop()


if __name__ == "__main__":
    try:
        main(globals())
    finally:
        CL.stop()
