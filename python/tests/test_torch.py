"""test_torch.py - paramd.torch against a live cluster.

In this process (1 worker, 2 servers): after bind() every parameter and
gradient is a view into the client's shared buffers; one sync step moves
the table by exactly -lr * the gradient torch computes; pull and push of
the model go by reference (the servers' shared-buffer counters); a
gradient replaced by zero_grad(set_to_none=True) is still pushed right;
after close() the module keeps working on its last weights, in memory of
its own.

Then the stated accuracy: an MLP 784-64-10 trained by 2 workers (sync,
mean of the 2 gradients, lr scaled by 2) on the first 8,000 Fashion-MNIST
training images for 5 passes reaches at least 75% on the first 2,000 test
images (79-84% with other seeds; the run is deterministic), and both workers started from the weights
of the worker that created the table although their own seeds differ.
"""
import os

from harness import check, eq, main, need, need_file, raises, shared_buffer_counters

np, torch = need("numpy", "torch")
import paramd        # noqa: E402
import paramd.torch  # noqa: E402
import torch.nn as nn             # noqa: E402
import torch.nn.functional as F   # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
TARGET = 0.75


def mlp(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))


def _inside(t, arr):
    lo = arr.__array_interface__["data"][0]
    return lo <= t.data_ptr() and t.data_ptr() + 4 * t.numel() <= lo + arr.nbytes


def test_views_exact_step_zero_copy_and_close():
    x = torch.rand(16, 1, 28, 28)
    y = torch.randint(0, 10, (16,))
    lr = 0.5
    with paramd.local(servers=2, workers=1, quiet=True, transport="shm") as cl:
        c = cl.connect(rank=0)
        model = mlp(1)
        ref = mlp(1)
        ps = paramd.torch.bind(c, model, "mlp", rule="sgd", lr=lr, consistency="sync")
        eq(ps.size, paramd.torch.flat_size(model), "size")
        eq(ps.size, 784 * 64 + 64 + 64 * 10 + 10, "floats")
        for p in model.parameters():
            check(_inside(p.data, ps.values) and _inside(p.grad, ps.grads), "views")
        for p, q in zip(model.parameters(), ref.parameters()):
            check(torch.equal(p, q), "the table starts from the module's values")
        base = shared_buffer_counters(cl.coordinator)
        for step, none in enumerate((False, True)):
            ps.pull()
            before = [p.detach().clone() for p in model.parameters()]
            if none:
                model.zero_grad(set_to_none=True)        # torch 2's default
            else:
                ps.zero_grad()
            F.cross_entropy(model(x), y).backward()
            grads = [p.grad.clone() for p in model.parameters()]
            ps.push()
            c.clock()
            ps.pull()
            for b, g, p in zip(before, grads, model.parameters()):
                err = (p - (b - lr * g)).abs().max().item()
                check(err < 1e-6, "step %d: table moved by -lr*grad (error %g)" % (step, err))
            for p in model.parameters():
                check(_inside(p.grad, ps.grads), "grads are views again after set_to_none")
        after = shared_buffer_counters(cl.coordinator)
        for k in range(2):
            eq(after[k]["pushes"] - base[k]["pushes"], 2, "server %d: pushes by reference" % k)
            eq(after[k]["pulls"] - base[k]["pulls"], 4, "server %d: pulls by reference" % k)
        out = model(x).detach().clone()
        c.close()
        for p in model.parameters():
            check(not _inside(p.data, ps.values or np.zeros(1)), "moved out at close")
        check(torch.equal(model(x), out), "the module works after close, same weights")
        check(cl.wait(60), "cluster ends")


def test_bind_bad_arguments():
    with paramd.local(servers=1, workers=1, quiet=True) as cl:
        with cl.connect(rank=0) as c:
            raises(paramd.InvalidArgumentError, paramd.torch.bind, c, object(),
                   match="expected a torch.nn.Module")
            raises(paramd.InvalidArgumentError, paramd.torch.bind, c, nn.Linear(2, 2).double(),
                   match="float64 .*float32")
            frozen = nn.Linear(2, 2)
            frozen.requires_grad_(False)
            raises(paramd.InvalidArgumentError, paramd.torch.bind, c, frozen,
                   match="no trainable parameters")


def _load(n_train, n_test):
    import gzip

    def idx(name, off):
        with gzip.open(os.path.join(DATA, name), "rb") as f:
            return np.frombuffer(f.read(), np.uint8, offset=off)
    x = idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 784)[:n_train]
    y = idx("train-labels-idx1-ubyte.gz", 8)[:n_train]
    tx = idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 784)[:n_test]
    ty = idx("t10k-labels-idx1-ubyte.gz", 8)[:n_test]
    f = lambda a: torch.from_numpy(a.astype(np.float32) / 255)  # noqa: E731
    return f(x), torch.from_numpy(y.astype(np.int64)), f(tx), torch.from_numpy(ty.astype(np.int64))


def _train(c, n_train, passes, batch, lr):
    torch.set_num_threads(1)
    model = mlp(100 + c.rank)            # different seeds: the table's values win
    W = c.num_workers
    ps = paramd.torch.bind(c, model, "mlp", rule="sgd", lr=lr * W, consistency="sync")
    start = sum(float(p.sum()) for p in model.parameters())
    x, y, tx, ty = _load(n_train, 2000)
    g = torch.Generator().manual_seed(c.rank)
    steps = passes * n_train // (W * batch)
    perm = torch.randperm(n_train, generator=g)
    for s in range(steps):
        at = (s * batch) % (n_train - batch)
        idx = perm[at:at + batch]
        ps.pull()
        ps.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        ps.push()
        c.clock()
    c.barrier()
    ps.pull()
    with torch.no_grad():
        acc = (model(tx).argmax(1) == ty).float().mean().item()
    return start, acc


def test_mlp_reaches_target_accuracy_with_2_workers():
    need_file(os.path.join(DATA, "train-images-idx3-ubyte.gz"), "dataset-fashion-mnist")
    with paramd.local(servers=2, workers=2, quiet=True) as cl:
        (s0, a0), (s1, a1) = cl.run(_train, 8000, 5, 32, 0.1)
    eq(s0, s1, "both workers start from the creator's weights")
    eq(a0, a1, "both end with the same weights (sync)")
    print("mlp: test accuracy %.2f%% on 2000 images (target %.0f%%)" % (100 * a0, 100 * TARGET))
    check(a0 >= TARGET, "accuracy %.4f below %.2f" % (a0, TARGET))


if __name__ == "__main__":
    main(globals())
