"""test_toy.py - the seed's toy from Python (examples/python/toy.py), run as
a user runs it: its exact results in the three modes, 200.0 async, 100.0
sync with the mean, 200.0 sync with the sum (10 floats, 2 workers x 100
pushes of ones on 2 servers), and the same program as the workers of
`paramd local` (4 servers: 10 floats do not divide by 4)."""
import os
import re
import subprocess
import sys

from harness import ROOT, check, eq, main, need

need("numpy")
TOY = os.path.join(ROOT, "examples", "python", "toy.py")


def _final(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    eq(out.returncode, 0, "exit status of %s (stderr: %s)" % (" ".join(cmd), out.stderr))
    lines = [l for l in out.stdout.splitlines() if "final params" in l]
    eq(len(lines), 1, "one final line (rank 0) in %r" % out.stdout)
    return lines[0]


def _expect(line, mode, agg, value):
    want = r"final params \(%s, %s\):( %s){10}$" % (mode, agg, re.escape(value))
    check(re.search(want, line), "%r matches %r" % (line, want))


def test_three_modes():
    for mode, agg, value in (("async", "mean", "200.0"), ("sync", "mean", "100.0"),
                             ("sync", "sum", "200.0")):
        line = _final([sys.executable, TOY, "--consistency", mode, "--aggregate", agg,
                       "--sleep-ms", "0"])
        _expect(line, mode, agg, value)


def test_as_workers_of_paramd_local():
    line = _final([os.environ["PARAMD_PROGRAM"], "local", "--servers", "4", "--workers", "2",
                   "--", sys.executable, TOY, "--consistency", "sync", "--sleep-ms", "0"])
    check(line.startswith("[worker 0] "), "paramd local's prefix: %r" % line)
    _expect(line, "sync", "mean", "100.0")


if __name__ == "__main__":
    main(globals())
