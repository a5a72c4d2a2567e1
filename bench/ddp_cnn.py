"""ddp_cnn.py - the baseline for examples/python/cnn.py: the same SimpleCNN,
data, batches and learning rate, trained with PyTorch's
DistributedDataParallel over the gloo backend instead of paramd.

    python3 bench/ddp_cnn.py [--workers 2] [--epochs 1] [--steps N] [--lr 0.03] [--comm off]

What is the same as cnn.py (imported from it): the model, Fashion-MNIST,
each worker's own permutation of the training set (seed, rank), batch 64
per worker, steps = epochs * 60000 / (W * batch), plain SGD with the
learning rate times W applied to the mean of the W gradients (DDP
averages them in its all-reduce), torch threads = cores / W, samples/s
timed from a barrier after start-up to a barrier after the last step, and
the final accuracy of worker 0's weights on the 10,000 test images.  What
differs: no parameter server; each worker applies the update itself, and
DDP overlaps the all-reduce of gradient buckets with the backward pass.

--comm off is the ceiling of both: the same W processes, each training its
own model on its own batches with no communication at all (no DDP wrapper,
the learning rate not scaled: each is one process of batch 64), timed the
same way; its accuracy is worker 0's own model's and not comparable.

The rendezvous is a file (FileStore), so no fixed port is used; gloo's own
connections are on loopback (GLOO_SOCKET_IFNAME=lo).  Prints the same
final line as cnn.py.
"""
import argparse
import os
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "examples", "python"))
from cnn import DATA, SimpleCNN, accuracy, batches, load  # noqa: E402


def worker(rank, a, store):
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    W = a.workers
    dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=W)
    if a.comm == "off":
        net = model = SimpleCNN()
        opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    else:
        model = torch.nn.parallel.DistributedDataParallel(SimpleCNN())
        net = model.module
        opt = torch.optim.SGD(model.parameters(), lr=a.lr * W)
    x, y = load("train", a.data)
    steps = a.steps or a.epochs * len(x) // (W * a.batch)
    dist.barrier()
    t0 = time.time()
    for step, idx in enumerate(batches(len(x), a.batch, steps, a.seed, rank)):
        opt.zero_grad()
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()                      # all-reduce (mean) of the gradients
        opt.step()
        if rank == 0 and (step + 1) % max(1, steps // 5) == 0:
            print("step %d/%d  loss %.4f" % (step + 1, steps, loss.item()), flush=True)
    dist.barrier()
    wall = time.time() - t0
    if rank == 0:
        acc = accuracy(net, *load("test", a.data))
        print("final: test accuracy %.2f%%  %d steps x %d workers x batch %d in %.1f s  "
              "%.0f samples/s (%s)" % (100 * acc, steps, W, a.batch, wall,
                                       steps * a.batch * W / wall,
                                       "ddp-gloo" if a.comm == "on" else "communication off"),
              flush=True)
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description="SimpleCNN with PyTorch DDP over gloo")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.03)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--comm", choices=["on", "off"], default="on")
    a = ap.parse_args()
    if not dist.is_available() or not dist.is_gloo_available():
        sys.exit("ddp_cnn: this torch has no torch.distributed with gloo")
    if not a.threads:
        a.threads = max(1, os.cpu_count() // a.workers)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(worker, args=(a, os.path.join(d, "store")), nprocs=a.workers)


if __name__ == "__main__":
    main()
