"""harness.py - what the Python tests share: skip rules, checks that print
both sides, and running a file's test_* functions in order.

Each python/tests/test_*.py is one ctest test, run as
`PYTHON FILE BUILD_DIR` with PYTHONPATH at python/ and PARAMD_LIBRARY /
PARAMD_PROGRAM at this build (CMakeLists.txt sets them).  A test needs
Debian's python3-numpy (and python3-torch, dataset-fashion-mnist for
some); when one is missing it exits 77, which ctest reports as skipped,
unless PARAMD_REQUIRE_PYTHON=1 (.ci/run sets it), which makes it a
failure.  Clusters are started with paramd.local() on loopback, port 0,
and stopped by the test that started them, also when it fails.
"""

import importlib
import os
import re
import sys
import traceback

SKIP = 77
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def need(*modules):
    """Import the modules, or skip the whole test if one is missing."""
    out = []
    for m in modules:
        try:
            out.append(importlib.import_module(m))
        except ImportError as e:
            pkg = {"numpy": "python3-numpy", "torch": "python3-torch"}.get(m, m)
            msg = "needs %s (%s): apt-get install %s" % (m, e, pkg)
            if os.environ.get("PARAMD_REQUIRE_PYTHON") == "1":
                print("FAIL: " + msg)
                sys.exit(1)
            print("skipped: " + msg)
            sys.exit(SKIP)
    return out


def need_file(path, package):
    if not os.path.exists(path):
        msg = "needs %s: apt-get install %s" % (path, package)
        if os.environ.get("PARAMD_REQUIRE_PYTHON") == "1":
            print("FAIL: " + msg)
            sys.exit(1)
        print("skipped: " + msg)
        sys.exit(SKIP)


class Failed(AssertionError):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def eq(got, want, what):
    if got != want:
        raise Failed("%s: got %r, want %r" % (what, got, want))


def raises(exc, fn, *args, match=None, **kw):
    """fn(*args, **kw) must raise exc (with a message matching `match`);
    returns the exception."""
    try:
        fn(*args, **kw)
    except exc as e:
        if match and not re.search(match, str(e)):
            raise Failed("%s raised %s(%r), whose message does not match %r"
                         % (getattr(fn, "__name__", fn), type(e).__name__, str(e), match))
        return e
    except Exception as e:
        raise Failed("%s raised %s(%r), want %s" % (getattr(fn, "__name__", fn),
                                                     type(e).__name__, str(e), exc.__name__))
    raise Failed("%s raised nothing, want %s" % (getattr(fn, "__name__", fn), exc.__name__))


def main(namespace):
    """Run every test_* function of the calling module, in file order."""
    tests = [(f.__code__.co_firstlineno, name, f) for name, f in namespace.items()
             if name.startswith("test_") and callable(f)]
    failed = 0
    for _, name, f in sorted(tests):
        try:
            f()
            print("ok: " + name, flush=True)
        except Exception:
            failed += 1
            print("FAIL: " + name, flush=True)
            traceback.print_exc()
    sys.exit(1 if failed else 0)


def shared_buffer_counters(coordinator):
    """Each server's "shared buffers" counters, from `paramd stats` (the
    servers' own count of requests served by reference into a worker's
    paramd_alloc memory): a list of {"mapped", "bytes", "pushes",
    "pulls"}, one per server."""
    import subprocess
    prog = os.environ.get("PARAMD_PROGRAM", "paramd")
    out = subprocess.run([prog, "stats", "--coordinator", coordinator], check=True,
                         capture_output=True, text=True).stdout
    rows = re.findall(r"shared buffers mapped (\d+) bytes (\d+) pushes (\d+) pulls (\d+)", out)
    if not rows:
        raise Failed("no 'shared buffers' lines in paramd stats:\n" + out)
    return [dict(zip(("mapped", "bytes", "pushes", "pulls"), map(int, r))) for r in rows]


def server_addresses(coordinator):
    """The cluster map as `paramd stats` prints it: {index: "HOST:PORT"}."""
    import subprocess
    prog = os.environ.get("PARAMD_PROGRAM", "paramd")
    out = subprocess.run([prog, "stats", "--coordinator", coordinator], check=True,
                         capture_output=True, text=True).stdout
    return {int(k): a for k, a in re.findall(r"^server (\d+) at (\S+):$", out, re.M)}


def listening_ports(pid):
    """The TCP ports process `pid` listens on (from /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # LISTEN
                ports.add(int(f[1].rsplit(":", 1)[1], 16))
    return ports
