"""cnn.py - the seed's Ray parameter-server example, in PyTorch on paramd.

The Ray example trains a SimpleCNN on MNIST with one parameter-server
actor (apply_gradients, get_weights) and W worker actors
(compute_gradients), synchronously - the server applies the mean of the
W gradients, the learning rate scaled by W - or asynchronously.  Here the
parameter server is a paramd table sharded over --servers servers, the
update rule (SGD) runs on them, and each worker is a PyTorch process:

    python3 examples/python/cnn.py                          # sync, 2 workers, 1 epoch
    python3 examples/python/cnn.py --consistency async
    python3 examples/python/cnn.py --workers 4 --servers 2 --epochs 2

The model is paramd train's cnn (conv 5x5x32, max-pool, conv 5x5x64,
max-pool, fc 1024, dropout 0.5, fc 10; 3,274,634 parameters; He-normal
weights, Glorot for the output layer, zero biases, as paramd train draws
them) on
Fashion-MNIST from the Debian package dataset-fashion-mnist.  Each worker
walks its own permutation of the training set; an epoch is 60,000
samples taken by all workers together.  Worker 0 evaluates the final
weights on the 10,000 test images.
"""
import argparse
import gzip
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import paramd
import paramd.torch

DATA = "/usr/share/datasets/fashion-mnist"


class SimpleCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc1 = nn.Linear(7 * 7 * 64, 1024)
        self.fc2 = nn.Linear(1024, 10)
        for layer in (self.conv1, self.conv2, self.fc1, self.fc2):  # paramd train's init
            if layer is self.fc2:
                nn.init.xavier_normal_(layer.weight)                 # Glorot for the output
            else:
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")  # He
            nn.init.zeros_(layer.bias)

    def forward(self, x):                         # x: (B, 1, 28, 28)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.dropout(F.relu(self.fc1(x.flatten(1))), 0.5, self.training)
        return self.fc2(x)


def load(kind, data=DATA):
    """Fashion-MNIST's IDX files: images (N, 1, 28, 28) in [0, 1], labels (N,)."""
    def idx(name, offset):
        with gzip.open(os.path.join(data, name), "rb") as f:
            return np.frombuffer(f.read(), np.uint8, offset=offset)
    pre = "train" if kind == "train" else "t10k"
    x = idx(pre + "-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)
    y = idx(pre + "-labels-idx1-ubyte.gz", 8)
    return torch.from_numpy(x.astype(np.float32) / 255), torch.from_numpy(y.astype(np.int64))


def batches(n, batch, steps, seed, rank):
    """`steps` batches of indices from this worker's own permutations."""
    rng = np.random.default_rng([seed, rank])
    perm, at = rng.permutation(n), 0
    for _ in range(steps):
        if at + batch > n:
            perm, at = rng.permutation(n), 0
        yield torch.from_numpy(perm[at:at + batch])
        at += batch


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        right = sum((model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
                    for i in range(0, len(x), 1000))
    model.train()
    return right / len(x)


def worker(ps, a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    W = ps.num_workers
    model = SimpleCNN()
    table = paramd.torch.bind(ps, model, "model", rule="sgd", lr=a.lr * W,  # linear scaling
                              consistency=a.consistency)
    x, y = load("train", a.data)
    steps = a.steps or a.epochs * len(x) // (W * a.batch)
    ps.barrier()
    t0 = time.time()
    for step, idx in enumerate(batches(len(x), a.batch, steps, a.seed, ps.rank)):
        table.pull()                                   # get the weights
        table.zero_grad()
        loss = F.cross_entropy(model(x[idx]), y[idx])  # compute the gradients
        loss.backward()
        table.push()                                   # apply them (on the servers)
        ps.clock()
        if ps.rank == 0 and (step + 1) % max(1, steps // 5) == 0:
            print("step %d/%d  loss %.4f" % (step + 1, steps, loss.item()), flush=True)
    ps.barrier()
    wall = time.time() - t0
    if ps.rank != 0:
        return None
    table.pull()
    acc = accuracy(model, *load("test", a.data))
    sps = steps * a.batch * W / wall
    print("final: test accuracy %.2f%%  %d steps x %d workers x batch %d in %.1f s  "
          "%.0f samples/s (%s, %d servers)" % (100 * acc, steps, W, a.batch, wall, sps,
                                               a.consistency, ps.num_servers), flush=True)
    return {"test_acc": acc, "wall_s": wall, "samples_per_s": sps, "steps": steps}


def main():
    ap = argparse.ArgumentParser(description="the seed's SimpleCNN on paramd, in PyTorch")
    ap.add_argument("--consistency", default="sync", help="sync, async or ssp:S")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--servers", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--steps", type=int, default=0, help="steps per worker instead of --epochs")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.03, help="per worker; multiplied by W")
    ap.add_argument("--threads", type=int, default=0, help="torch threads per worker "
                    "[cores / workers]")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", default=DATA)
    a = ap.parse_args()
    if not a.threads:
        a.threads = max(1, os.cpu_count() // a.workers)
    with paramd.local(servers=a.servers, workers=a.workers, quiet=True) as cluster:
        return cluster.run(worker, a)[0]


if __name__ == "__main__":
    main()
