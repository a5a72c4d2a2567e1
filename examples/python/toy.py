"""toy.py - the seed's "parameter server in 15 lines", in Python on paramd.

The blog post keeps 10 floats on 2 parameter servers; 2 workers each loop
100 times: get the params, make a fake gradient of ten ones, sleep, update
the params (params += grad).  Here the servers are paramd's, the table is
sharded over them, and the loop is the seed's:

    python3 examples/python/toy.py                        # starts its own cluster
    python3 examples/python/toy.py --consistency sync     # mean of the 2 pushes
    python3 examples/python/toy.py --consistency sync --aggregate sum
    paramd local --servers 2 --workers 2 -- python3 examples/python/toy.py

Worker 0 prints the final params, as examples/toy.c does: 200 everywhere in
async mode (every push is added), 100 in sync mode (each clock applies the
mean of the two pushes once), 200 in sync mode with --aggregate sum.
"""
import argparse
import time

import numpy as np
import paramd


def worker(ps, consistency, aggregate, iters, sleep_s):
    params = ps.table("params", 10, rule="add", consistency=consistency, aggregate=aggregate)
    for _ in range(iters):
        p = params.pull()                        # get the latest parameters
        grad = np.ones(10, dtype=np.float32)     # compute a (fake) gradient
        time.sleep(sleep_s)
        params.push(grad)                        # update the parameters
        ps.clock()
    ps.barrier()                                 # every worker has pushed
    if ps.rank == 0:
        p = params.pull()
        print("final params (%s, %s): %s" % (consistency, aggregate,
                                             " ".join("%.1f" % v for v in p)), flush=True)


def main():
    ap = argparse.ArgumentParser(description="the seed's toy parameter server on paramd")
    ap.add_argument("--consistency", choices=["async", "sync"], default="async")
    ap.add_argument("--aggregate", choices=["mean", "sum"], default="mean")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--sleep-ms", type=float, default=20, help="the seed sleeps 200")
    ap.add_argument("--servers", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    # Start 2 servers and run 2 workers (inside `paramd local`, join its cluster).
    with paramd.local(servers=a.servers, workers=a.workers, quiet=True) as cluster:
        cluster.run(worker, a.consistency, a.aggregate, a.iters, a.sleep_ms / 1000)


if __name__ == "__main__":
    main()
