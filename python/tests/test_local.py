"""test_local.py - paramd.local(): the cluster's processes are gone after an
exception in the `with` block, Ctrl-C (SIGINT), a plain exit (atexit), and
a SIGKILL or SIGTERM of the program (PR_SET_PDEATHSIG); Cluster.run()
returns the workers' results in rank order, raises WorkerError naming a
failing or dying worker after stopping the others, and serves one run;
inside `paramd local` the same program attaches to that cluster; bad
arguments are clear errors.

Each lifetime case runs a small program that starts a cluster, prints the
pids of its coordinator and servers, and then meets its end.  This test
process is a child subreaper (PR_SET_CHILD_SUBREAPER), so a cluster
process left behind becomes our child: we wait for each pid, and an alarm
turns "still running" into a failure instead of a hang.
"""
import ctypes
import json
import os
import signal
import subprocess
import sys
import time

from harness import check, eq, main, need, raises

np, = need("numpy")
import paramd  # noqa: E402

PY = sys.executable
_PR_SET_CHILD_SUBREAPER = 36

PROGRAM = r"""
import json, os, sys, time, paramd
how = sys.argv[1]
cl = paramd.local(servers=2, workers=1, quiet=True)
procs = [cl.process(n) for n in ("coordinator", "server 0", "server 1")]
pids = [[p.pid, p.poll() is None] for p in procs]    # pid, running
if how == "exception":
    with cl:
        print(json.dumps(pids), flush=True)
        raise RuntimeError("boom in the with block")
elif how == "exit":
    print(json.dumps(pids), flush=True)      # no stop(): atexit does it
else:  # wait to be signalled
    with cl:
        print(json.dumps(pids), flush=True)
        sys.stdin.read()
"""


def _gone(pids):
    """Every pid has exited: either its parent reaped it, or it is ours now
    (we are a subreaper) and we reap it; SIGALRM fails a pid that lives on."""
    def late(*_):
        for p in pids:  # clean up before failing
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        raise TimeoutError("a cluster process was still running (now killed): %s" % pids)
    old = signal.signal(signal.SIGALRM, late)
    signal.alarm(30)
    try:
        for p in pids:
            try:
                os.waitpid(p, 0)
            except ChildProcessError:
                pass  # reaped by the program that started it
            try:
                os.kill(p, 0)
                raise AssertionError("pid %d exists after being waited for" % p)
            except ProcessLookupError:
                pass
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _run(how, sig=None):
    p = subprocess.Popen([PY, "-c", PROGRAM, how], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    got = json.loads(p.stdout.readline())
    eq([running for _, running in got], [True] * 3, "coordinator and servers were running")
    pids = [pid for pid, _ in got]
    if sig:
        p.send_signal(sig)
    out, err = p.communicate()
    _gone(pids)
    return p.returncode, err


def test_stop_on_exception():
    rc, err = _run("exception")
    check(rc == 1 and "boom in the with block" in err, "rc %d: %s" % (rc, err))


def test_stop_on_ctrl_c():
    rc, err = _run("wait", signal.SIGINT)
    check("KeyboardInterrupt" in err, "KeyboardInterrupt went through: %s" % err)
    check(rc != 0, "non-zero exit")


def test_stop_at_exit():
    rc, err = _run("exit")
    eq(rc, 0, "exit status (%s)" % err)


def test_sigkill_of_the_program_leaves_nothing():
    rc, _ = _run("wait", signal.SIGKILL)
    eq(rc, -signal.SIGKILL, "killed")


def test_sigterm_of_the_program_leaves_nothing():
    rc, _ = _run("wait", signal.SIGTERM)
    eq(rc, -signal.SIGTERM, "terminated")


# -- run() ------------------------------------------------------------------
# Worker functions are module-level: "spawn" imports this file in each
# worker (as __mp_main__), which must then start nothing.

def _rank_and_sum(c, k):
    t = c.table("t", 4, rule="add", consistency="sync", aggregate="sum")
    t.push(np.full(4, k, dtype=np.float32))
    c.clock()
    return (c.rank, c.num_workers, float(t.pull()[0]))


def _fail_in_rank_1(c):
    if c.rank == 1:
        raise ValueError("worker one is unhappy")
    time.sleep(600)  # stopped by run() when rank 1 fails


def _die_in_rank_0(c):
    if c.rank == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(600)


def test_run_results_in_rank_order():
    with paramd.local(servers=2, workers=3, quiet=True) as cl:
        got = cl.run(_rank_and_sum, 2)
        eq(got, [(0, 3, 6.0), (1, 3, 6.0), (2, 3, 6.0)], "results")
        raises(paramd.ShutdownError, cl.run, _rank_and_sum, 2, match="served its run already")
        check(cl.wait(60), "the cluster ends by itself after the run")
        eq(cl.failed(), [], "clean exits")


def test_run_raises_worker_error_and_stops_the_others():
    with paramd.local(servers=1, workers=2, quiet=True) as cl:
        e = raises(paramd.WorkerError, cl.run, _fail_in_rank_1)
        eq(e.rank, 1, "rank")
        check("ValueError: worker one is unhappy" in str(e) and "Traceback" in str(e),
              "the traceback: %s" % e)
    with paramd.local(servers=1, workers=2, quiet=True) as cl:
        e = raises(paramd.WorkerError, cl.run, _die_in_rank_0)
        eq(e.rank, 0, "rank")
        check("killed by signal 9" in str(e), "how it ended: %s" % e)


def test_run_with_fork():
    with paramd.local(servers=1, workers=2, quiet=True) as cl:
        eq(cl.run(lambda c: c.rank * 10, start_method="fork"), [0, 10], "closures with fork")


def test_attached_inside_paramd_local():
    prog = ("import paramd\n"
            "with paramd.local(servers=5, workers=7) as cl:\n"
            "    print(cl.attached, cl.servers, cl.workers, cl.run(lambda c: c.rank + 100))\n")
    out = subprocess.run([os.environ["PARAMD_PROGRAM"], "local", "--servers", "1", "--workers",
                          "2", "--", PY, "-c", prog], capture_output=True, text=True, timeout=120)
    eq(out.returncode, 0, "paramd local exit (%s)" % out.stderr)
    lines = sorted(l for l in out.stdout.splitlines() if l.startswith("[worker"))
    eq(lines, ["[worker 0] True 1 2 [100, None]", "[worker 1] True 1 2 [None, 101]"],
       "each worker ran its own rank in the outer cluster")


def test_bad_arguments():
    raises(paramd.InvalidArgumentError, paramd.local, servers=0, match="servers=0.*1..256")
    raises(paramd.InvalidArgumentError, paramd.local, workers="2", match="workers='2'")
    raises(paramd.InvalidArgumentError, paramd.local, transport="udp", match="'udp'")
    raises(paramd.ConfigError, paramd.local, program="/nonexistent/paramd",
           match="cannot run the paramd program /nonexistent/paramd: No such file")


if __name__ == "__main__":
    ctypes.CDLL(None).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    main(globals())
