"""paramd - a parameter server for distributed training, from Python.

    import numpy as np, paramd

    with paramd.connect() as c:                      # cluster from the environment
        t = c.table("params", 10, rule="add", consistency="async")
        for _ in range(100):
            params = t.pull()                        # a float32 numpy array
            t.push(np.ones(10, dtype=np.float32))    # params += ones
            c.clock()
        c.barrier()

paramd.connect() is the C library's paramd_connect (include/paramd.h is
the reference for every call); paramd.local() starts a cluster on this
machine for a Python program and runs W worker processes in it, as
ray.init() does; paramd.torch backs a torch.nn.Module's parameters and
gradients with shared memory, so a training step moves no copy of the
model through Python.  docs/python.md is the guide.

The package is ctypes over libparamd: no compiled extension.  It checks at
import that the library is of its MAJOR.MINOR version.
"""

from ._version import __version__
from ._lib import library_version, path as library_path
from .errors import *  # noqa: F401,F403  (Error and one class per code)
from . import errors
from .errors import Error
from .client import Client, Table, SparseTable, Request, connect
from ._cluster import Cluster, WorkerError, local

__all__ = ["__version__", "library_version", "library_path", "connect", "local",
           "Client", "Table", "SparseTable", "Request", "Cluster", "WorkerError",
           "Error"] + errors.__all__[1:]
