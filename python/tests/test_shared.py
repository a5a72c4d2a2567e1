"""test_shared.py - the zero-copy path and a dead server.

Zero copies: a push from and a pull into Client.alloc() memory are served
by reference - the servers' own counters of requests on shared buffers
(`paramd stats`) go up by one per server each, while the same calls on
ordinary numpy arrays leave them alone, and paramd_table_stat
(Table.stat) sees every push and pull either way.  A dead server: after
SIGKILL of server 1, every call that needs it raises a ConnectionError
subclass of paramd.Error whose message names "server 1"."""
import signal

from harness import (check, eq, listening_ports, main, need, raises, server_addresses,
                     shared_buffer_counters)

np, = need("numpy")
import paramd  # noqa: E402

F32 = np.float32
N = 1 << 16   # 128 KiB per server, above the client's by-reference minimum


def test_zero_copy_path_on_the_servers_counters():
    with paramd.local(servers=2, workers=1, quiet=True, transport="shm") as cl:
        with cl.connect(rank=0) as c:
            t = c.table("w", N, rule="add")
            base = shared_buffer_counters(cl.coordinator)
            t.push(np.ones(N, dtype=F32))                  # private memory: copied
            plain = t.pull()
            c.clock()
            eq(shared_buffer_counters(cl.coordinator), base, "private arrays: no reference")
            g, v = c.alloc(N), c.alloc((N // 4, 4))        # shared memory
            g.fill(2)
            t.push(g)
            t.pull(out=v)
            after = shared_buffer_counters(cl.coordinator)
            for k in range(2):
                eq(after[k]["mapped"], 2, "server %d maps both buffers" % k)
                eq(after[k]["pushes"] - base[k]["pushes"], 1, "server %d: push by reference" % k)
                eq(after[k]["pulls"] - base[k]["pulls"], 1, "server %d: pull by reference" % k)
            check(np.all(plain == 1) and np.all(v == 3), "values: %s %s" % (plain[:3], v[0]))
            eq(t.stat("pushes"), 4, "Table.stat: 2 pushes x 2 servers")
            eq(t.stat("pulls"), 4, "Table.stat: 2 pulls x 2 servers")
            eq(t.stat("bytes_in"), 2 * N * 4, "bytes_in counts the floats both ways")
            c.free(g)
            eq([s["mapped"] for s in shared_buffer_counters(cl.coordinator)], [1, 1],
               "free unmaps from every server")


def test_dead_server_raises_naming_it():
    with paramd.local(servers=2, workers=1, quiet=True) as cl:
        c = cl.connect(rank=0)
        t = c.table("w", 10, init=np.arange(10, dtype=F32))
        check(np.array_equal(t.pull(), np.arange(10)), "before")
        # server index 1 in the cluster map (the coordinator numbers servers
        # as they register), found by its port
        port = int(server_addresses(cl.coordinator)[1].rsplit(":", 1)[1])
        victim = [p for p in (cl.process("server 0"), cl.process("server 1"))
                  if port in listening_ports(p.pid)]
        eq(len(victim), 1, "one process listens on server 1's port %d" % port)
        victim = victim[0]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        # [5, 10) is server 1's shard
        e = raises(paramd.Error, t.pull, offset=5, count=5,
                   match="server 1 \\(127.0.0.1:%d[ )]" % port)
        check(isinstance(e, ConnectionError), "a ConnectionError: %s" % type(e).__name__)
        check(e.code in (-3, -5), "EIO or ECLOSED, got %s" % e.name)
        raises(paramd.Error, t.push, np.ones(5, dtype=F32), offset=5, match="server 1")
        raises(paramd.Error, lambda: t.push_async(np.ones(5, dtype=F32), offset=5).wait(),
               match="server 1")
        try:
            c.close()
        except paramd.Error:
            pass  # closing with a dead server reports it; the client is freed anyway
        check(c.closed, "closed")


if __name__ == "__main__":
    main(globals())
