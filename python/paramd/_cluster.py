"""_cluster.py - paramd.local(): a cluster on this machine for a Python
program, the ray.init() of paramd, and Cluster.run(), its W workers.

    with paramd.local(servers=2, workers=2) as cluster:
        results = cluster.run(worker, 100)       # worker(client, 100) in 2 processes

What it does.  paramd.local() starts `paramd coordinator` (listening on
loopback, port 0; it reports its address on a pipe, --ready-fd) and S
`paramd server` processes, the same processes `paramd local` starts.
run(fn, ...) starts W worker processes (multiprocessing, "spawn" by
default: safe with torch's threads), each connected to the cluster with
its rank, and calls fn(client, ...) in each; it returns the W results in
rank order, or raises WorkerError with the failing worker's traceback
after stopping the others.  A cluster serves one run: the coordinator
ends the cluster once its W workers have left, as `paramd local` does.

Lifetime (the point of this file).  The cluster stops when the `with`
block ends, on an exception in it, on Ctrl-C (KeyboardInterrupt passes
through the `with`), at interpreter exit (atexit) and when stop() is
called; stopping sends SIGTERM, then SIGKILL after a grace period, and
waits for every process.  Every process started here also gets
PR_SET_PDEATHSIG=SIGKILL, so even a SIGKILL of the Python program leaves
none behind.  Linux ties that signal to the *thread* that started the
process: start the cluster from the main thread (or one that outlives it).

Inside a cluster.  When PARAMD_COORDINATOR is already set - the program
runs as one worker of `paramd local -- python3 prog.py`, or of mpirun -
paramd.local() starts nothing and attaches to that cluster (its
arguments are not used: the outer cluster's S and W are), and run() calls
fn in this process only, for this process's rank, and returns a list
with that one result at its rank and None elsewhere.  So one program runs
both ways.

Output.  Coordinator and servers write to this program's stderr, each
line prefixed with its role ("[server 1] ..."); quiet=True keeps them
out, and their last lines still go into the error when one fails.
Workers inherit stdout and stderr.
"""

import atexit
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import subprocess
import sys
import threading
import traceback

from . import _paths
from . import errors
from .errors import Error

_PR_SET_PDEATHSIG = 1


class WorkerError(Error):
    """A worker of Cluster.run() failed: .rank, and the message holds its
    traceback (or how its process ended)."""

    code = -19
    name = "PARAMD_ECONFIG"

    def __init__(self, rank, message):
        self.rank = rank
        super().__init__("worker %d: %s" % (rank, message))

    def __str__(self):
        return self.message


# ==== Helpers ==============================================================

def _die_with_parent():
    """Child side: be killed when the process (thread) that started us dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def find_program():
    """The paramd program: $PARAMD_PROGRAM, the installed one, the source
    tree's build/paramd, or `paramd` on PATH."""
    env = os.environ.get("PARAMD_PROGRAM")
    if env:
        return env
    if _paths.PROGRAM and os.path.exists(_paths.PROGRAM):
        return _paths.PROGRAM
    here = os.path.dirname(os.path.abspath(__file__))
    tree = os.path.join(os.path.dirname(os.path.dirname(here)), "build", "paramd")
    if os.path.exists(tree):
        return tree
    found = shutil.which("paramd")
    if found:
        return found
    raise errors.error(-19, "paramd.local: cannot find the paramd program: build it "
                       "(make build), install it (make install), or set "
                       "PARAMD_PROGRAM=/path/to/paramd")


class _Child:
    """One coordinator or server process, its output forwarded with a prefix."""

    def __init__(self, label, argv, quiet, pass_fds=()):
        self.label = label
        self.tail = []
        self.terminated = False  # stop() had to signal it
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, pass_fds=pass_fds,
                                     preexec_fn=_die_with_parent, close_fds=True)
        self.thread = threading.Thread(target=self._forward, args=(quiet,),
                                       name="paramd " + label, daemon=True)
        self.thread.start()

    def _forward(self, quiet):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.tail = (self.tail + [line])[-10:]
            if not quiet:
                try:
                    sys.stderr.write("[%s] %s\n" % (self.label, line))
                    sys.stderr.flush()
                except (ValueError, OSError):  # stderr closed at exit
                    pass
        self.proc.stdout.close()

    def why(self):
        rc = self.proc.poll()
        how = ("exit status %d" % rc if rc >= 0 else "killed by signal %d" % -rc) \
            if rc is not None else "running"
        return "%s (%s)%s" % (self.label, how,
                              (": " + " | ".join(self.tail[-3:])) if self.tail else "")


# ==== Workers ==============================================================

def _worker_main(env, rank, fn, args, kwargs, conn):
    """A worker process of Cluster.run(): connect, call fn, send back the
    result (or the traceback), close."""
    _die_with_parent()
    os.environ.update(env)
    from . import client as _client
    try:
        with _client.connect() as c:
            result = fn(c, *args, **kwargs)
        conn.send(("ok", result))
    except BaseException:
        try:
            conn.send(("error", traceback.format_exc()))
        finally:
            os._exit(1)
    finally:
        conn.close()


# ==== The cluster ==========================================================

class Cluster:
    """A local cluster; see paramd.local()."""

    def __init__(self, servers=1, workers=1, transport=None, host="127.0.0.1",
                 apply_threads=None, quiet=False, program=None, timeout_s=30.0):
        if getattr(multiprocessing.current_process(), "_inheriting", False):
            # A worker of run() ("spawn") is importing the main module, and
            # the module starts a cluster at import: it would start one per
            # worker, recursively.
            raise errors.error(-19, "paramd.local() was called while a worker process "
                               "imported the main module: start the cluster under "
                               "`if __name__ == \"__main__\":` (run() starts workers with "
                               "multiprocessing's \"spawn\", which imports the main module)")
        self._children = []
        self._used = False
        self._run_ok = False
        self._stopped = False
        self.attached = "PARAMD_COORDINATOR" in os.environ
        if self.attached:
            self.coordinator = os.environ["PARAMD_COORDINATOR"]
            self.servers = int(os.environ.get("PARAMD_SERVERS", "0")) or None
            self.workers = int(os.environ.get("PARAMD_WORKERS", "0")) or None
            self.transport = os.environ.get("PARAMD_TRANSPORT")
            return
        for what, v, hi in (("servers", servers, 256), ("workers", workers, 1024)):
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= hi:
                raise errors.bad_argument("paramd.local: %s=%r: give an integer in 1..%d"
                                          % (what, v, hi))
        if transport not in (None, "auto", "tcp", "shm"):
            raise errors.bad_argument("paramd.local: transport=%r: give 'auto', 'tcp' or 'shm'"
                                      % (transport,))
        self.servers, self.workers, self.transport = servers, workers, transport
        prog = program or find_program()
        atexit.register(self.stop)
        try:
            self._start(prog, host, apply_threads, quiet, timeout_s)
        except BaseException:
            self.stop()
            raise

    def _start(self, prog, host, apply_threads, quiet, timeout_s):
        rfd, wfd = os.pipe()
        try:
            co = _Child("coordinator",
                        [prog, "coordinator", "--listen", "%s:0" % host,
                         "--servers", str(self.servers), "--workers", str(self.workers),
                         "--ready-fd", str(wfd)], quiet, pass_fds=(wfd,))
            self._children.append(co)
        except OSError as e:
            os.close(rfd)
            raise errors.error(-19, "paramd.local: cannot run the paramd program %s: %s"
                               % (prog, e.strerror or e)) from None
        finally:
            os.close(wfd)
        with os.fdopen(rfd, "rb") as r:
            ready = multiprocessing.connection.wait([r], timeout_s)
            line = r.readline().decode().strip() if ready else ""
        if not line:
            co.proc.poll()
            raise errors.error(-19, "paramd.local: the coordinator did not start: " + co.why())
        self.coordinator = line
        extra = ["--apply-threads", str(apply_threads)] if apply_threads else []
        for k in range(self.servers):
            self._children.append(_Child("server %d" % k, [prog, "server", "--coordinator",
                                                           line] + extra, quiet))

    def __repr__(self):
        return "<paramd.Cluster at %s: %s servers, %s workers%s>" % (
            self.coordinator, self.servers, self.workers, ", attached" if self.attached else "")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def env(self, rank):
        """The environment of worker `rank`: what `paramd local` gives its
        workers (PARAMD_COORDINATOR, PARAMD_RANK, PARAMD_WORKERS,
        PARAMD_SERVERS, and PARAMD_TRANSPORT if one was chosen)."""
        e = {"PARAMD_COORDINATOR": self.coordinator, "PARAMD_RANK": str(rank)}
        if self.workers:
            e["PARAMD_WORKERS"] = str(self.workers)
        if self.servers:
            e["PARAMD_SERVERS"] = str(self.servers)
        if self.transport:
            e["PARAMD_TRANSPORT"] = self.transport
        return e

    def connect(self, rank=None, **options):
        """A client of this cluster in this process (one of its workers)."""
        from .client import connect
        return connect(coordinator=self.coordinator, rank=rank, **options)

    def run(self, fn, *args, start_method="spawn", **kwargs):
        """Call fn(client, *args, **kwargs) in each of the W workers, each
        a process of its own with a client connected as its rank; return
        their results in rank order.  fn and its arguments and results
        must be picklable (a module-level function) with "spawn", the
        default; start_method="fork" also takes closures but must not be
        used once torch or OpenMP threads run in this process.  If a worker
        fails, the others are stopped and WorkerError is raised."""
        if self.attached:
            from .client import connect
            with connect() as c:
                out = [None] * (c.num_workers)
                out[c.rank] = fn(c, *args, **kwargs)
            return out
        if self._stopped:
            raise errors.error(-17, "paramd.local: this cluster was stopped")
        if self._used:
            raise errors.error(-17, "paramd.local: this cluster served its run already (its "
                               "coordinator ends the cluster when its workers leave): "
                               "start a new paramd.local()")
        self._used = True
        ctx = multiprocessing.get_context(start_method)
        procs, conns = [], []
        for r in range(self.workers):
            rd, wr = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_worker_main, name="paramd worker %d" % r,
                            args=(self.env(r), r, fn, args, kwargs, wr))
            p.start()
            wr.close()
            procs.append(p)
            conns.append(rd)
        results = [None] * self.workers
        try:
            self._collect(procs, conns, results)
        except BaseException:
            for p in procs:
                if p.is_alive():
                    p.terminate()
            for p in procs:
                p.join(5)
                if p.is_alive():
                    p.kill()
                    p.join()
            raise
        for p in procs:
            p.join()
        self._run_ok = True
        return results

    def _collect(self, procs, conns, results):
        waiting = {c: r for r, c in enumerate(conns)}
        alive = {p.sentinel: r for r, p in enumerate(procs)}
        while waiting:
            for obj in multiprocessing.connection.wait(list(waiting) + list(alive)):
                if obj in waiting:
                    r = waiting.pop(obj)
                    try:
                        kind, value = obj.recv()
                    except EOFError:
                        procs[r].join()
                        raise WorkerError(r, "its process ended (%s) without a result"
                                          % _how(procs[r].exitcode)) from None
                    if kind == "error":
                        raise WorkerError(r, "failed:\n" + value)
                    results[r] = value
                elif obj in alive:
                    r = alive.pop(obj)
                    procs[r].join()
                    if procs[r].exitcode != 0 and conns[r] in waiting and not conns[r].poll():
                        raise WorkerError(r, "its process ended (%s)" % _how(procs[r].exitcode))

    def wait(self, timeout_s=None):
        """Wait for the coordinator and servers to exit by themselves (they
        do once every worker has left); False if they are still running
        after timeout_s."""
        for ch in self._children:
            try:
                ch.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                return False
        return True

    def process(self, label):
        """The subprocess.Popen of "coordinator" or "server K".  Servers are
        labelled in the order they were started; the coordinator numbers
        them in its cluster map (the K of "server K" in error messages) in
        the order they register, which can differ."""
        for ch in self._children:
            if ch.label == label:
                return ch.proc
        raise KeyError("no process %r in this cluster (%s)"
                       % (label, ", ".join(ch.label for ch in self._children)))

    def failed(self):
        """Descriptions of coordinator and server processes that exited
        with an error by themselves ([] if none): those stop() had to
        terminate do not count."""
        return [ch.why() for ch in self._children
                if not ch.terminated and ch.proc.poll() not in (None, 0)]

    def stop(self, grace_s=5.0):
        """Stop every process of the cluster (SIGTERM, then SIGKILL after
        grace_s) and wait for them.  Harmless when stopped already."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        if self._run_ok:  # the workers left: the cluster is ending by itself
            self.wait(grace_s)
        for ch in self._children:
            if ch.proc.poll() is None:
                ch.terminated = True
                ch.proc.send_signal(signal.SIGTERM)
        for ch in self._children:
            try:
                ch.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                ch.proc.kill()
                ch.proc.wait()
        for ch in self._children:
            ch.thread.join(1.0)


def _how(code):
    if code is None:
        return "still running"
    return "exit status %d" % code if code >= 0 else "killed by signal %d" % -code


def local(servers=1, workers=1, **options):
    """Start a cluster on this machine - a coordinator and `servers`
    servers, for `workers` workers - and return it (a Cluster; use it in
    a `with` block).  Options: transport="auto"|"tcp"|"shm" (how workers
    reach servers), apply_threads=N (paramd server --apply-threads),
    quiet=True (no cluster log lines), host="127.0.0.1", program=PATH (the
    paramd program).  Inside a cluster already (PARAMD_COORDINATOR set),
    it attaches to that one instead; see Cluster.run()."""
    return Cluster(servers=servers, workers=workers, **options)
