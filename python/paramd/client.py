"""client.py - a worker's connection to a paramd cluster, its tables and
shared buffers, as Python objects over libparamd.

What it is.  One Python object per C handle: Client (paramd_client),
Table and SparseTable (paramd_table), Request (paramd_request).  Every
call is the C call of the same name with numpy arrays for the float and
key buffers; what each call means is in include/paramd.h, which stays the
reference.

Arrays.  A buffer is handed to C as it is, never converted: values are
float32, keys uint64, and an array must be C-contiguous (a pull's
destination also writeable).  Anything else - a float64 array, a strided
view, a wrong shape - is an InvalidArgumentError (a ValueError) that says
what to pass instead, raised before anything is sent.  So an array given
to a call is the memory the call reads or writes: a pull into `out` lands
in `out`, and no call makes a hidden copy.  Plain lists and tuples are
accepted as inputs (values, keys, initial values) and converted, since
they are copies anyway.  Objects that numpy can view without a copy
(a CPU torch.Tensor that needs no grad) work like arrays.

Zero copies.  Client.alloc() returns an array in memory from
paramd_alloc: over the shared-memory transport a pull into it is copied
by the server straight into the array, and a push from it is read by the
server's update rule where it lies (docs/transports.md).  Such an array
is valid until Client.free() or Client.close(), exactly as in C: copy
what must outlive the client (arr.copy()).  paramd.torch builds on it.

Lifetimes.  An async call returns a Request that holds the arrays it uses,
so Python cannot free them while the library reads or writes them; every
request must be waited for, and Client.close() waits for those that were
not.  close() is also what `with` and garbage collection call; it must
not race with other calls on the client (paramd.h's rule).

Errors.  A failing call raises the paramd.Error subclass of its code with
the library's detail (paramd_last_error) as the message.
"""

import ctypes
import operator
import threading

import numpy as np

from . import errors
from ._lib import lib, c_void_p, c_uint64

_F32 = np.dtype(np.float32)
_U64 = np.dtype(np.uint64)


# ==== Argument checks ======================================================

def _text(s):
    return s.decode("utf-8", "replace") if s else ""


def _options(options, kw, what):
    """key=value pairs for paramd_connect / a table spec, from a string
    and keyword arguments (None values are left out)."""
    parts = []
    if options:
        if not isinstance(options, str):
            raise errors.bad_argument("%s must be a string of key=value pairs, not %s"
                                      % (what, type(options).__name__))
        parts.append(options.strip())
    for k, v in kw.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = "yes" if v else "no"
        v = str(v)
        if not v or any(ch.isspace() for ch in v):
            raise errors.bad_argument("%s: %s=%r: a value must be non-empty without spaces"
                                      % (what, k, v))
        parts.append("%s=%s" % (k, v))
    s = " ".join(p for p in parts if p)
    return s.encode() if s else None


def _index(v, what):
    try:
        v = operator.index(v)
    except TypeError:
        raise errors.bad_argument("%s must be an integer, not %s"
                                  % (what, type(v).__name__)) from None
    if v < 0:
        raise errors.bad_argument("%s must be >= 0, not %d" % (what, v))
    return v


def _view(x, what):
    """x as an ndarray without a copy (an ndarray, or what np.asarray views)."""
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.asarray(x)
    except Exception as e:  # e.g. a torch tensor that requires grad
        raise errors.bad_argument("%s: cannot use a %s as an array (%s)"
                                  % (what, type(x).__name__, e)) from None


def _check(a, what, dtype, writeable):
    if a.dtype != dtype:
        raise errors.bad_argument(
            "%s has dtype %s; paramd needs %s: pass %s.astype(np.%s)"
            % (what, a.dtype, dtype, what, dtype.name))
    if not a.flags.c_contiguous:
        raise errors.bad_argument(
            "%s is not C-contiguous (a strided view or a transpose?): pass "
            "np.ascontiguousarray(%s)" % (what, what))
    if writeable and not a.flags.writeable:
        raise errors.bad_argument("%s is read-only; a pull needs a writeable array" % what)
    return a


def _in_f32(x, what):
    """Values to send: a float32 C-contiguous array (lists are converted)."""
    if isinstance(x, (list, tuple)):
        try:
            return np.asarray(x, dtype=_F32)
        except (TypeError, ValueError) as e:
            raise errors.bad_argument("%s: not a list of numbers (%s)" % (what, e)) from None
    return _check(_view(x, what), what, _F32, False)


def _out_f32(x, what):
    """A destination: a float32 C-contiguous writeable array."""
    if isinstance(x, (list, tuple)):
        raise errors.bad_argument("%s must be a numpy float32 array, not a %s"
                                  % (what, type(x).__name__))
    return _check(_view(x, what), what, _F32, True)


def _keys(x):
    """Keys: a 1-D uint64 C-contiguous array (lists of ints are converted)."""
    if isinstance(x, (list, tuple)):
        for k in x:
            if not isinstance(k, (int, np.integer)) or isinstance(k, bool) \
                    or not 0 <= int(k) < 1 << 64:
                raise errors.bad_argument("keys: %r is not an integer in 0..2^64-1" % (k,))
        a = np.array([int(k) for k in x], dtype=_U64)
    else:
        a = _check(_view(x, "keys"), "keys", _U64, False)
    if a.ndim != 1:
        raise errors.bad_argument("keys must be 1-D, not of shape %s" % (a.shape,))
    return a


def _addr(a):
    return a.__array_interface__["data"][0] if a.size else None


# ==== Requests =============================================================

class Request:
    """An asynchronous pull or push in flight.  wait() completes it: it
    returns the destination array of a pull (None for a push) or raises
    the request's error.  Wait for every request exactly once (close()
    waits for the ones left)."""

    __slots__ = ("_client", "_h", "_result", "_keep", "_done")

    def __init__(self, client, handle, result, keep):
        self._client = client
        self._h = handle
        self._result = result
        self._keep = keep  # the arrays the library uses until wait returns
        self._done = False

    @property
    def done(self):
        """True once wait() has been called."""
        return self._done

    def wait(self):
        if self._done:
            raise errors.bad_argument("this request was waited for already")
        self._done = True
        rc = lib.paramd_wait(self._h)
        self._client._forget(self)
        self._h = None
        self._keep = None
        if rc:
            raise self._client._error(rc)
        return self._result


# ==== Tables ===============================================================

class _TableBase:
    def __init__(self, client, handle, name, spec):
        self.client = client
        self.name = name
        self.spec = spec
        self._h = handle

    def _handle(self):
        self.client._handle()  # raises if the client is closed
        return self._h

    def stat(self, counter, server=-1):
        """One counter of this table (paramd_table_stat): on server
        `server` (0..S-1), or summed over all with -1.  Names are those of
        `paramd stats` lines ("pushes", "pulls", "bytes_in", ...)."""
        if not isinstance(counter, str) or not counter:
            raise errors.bad_argument("stat: the counter name must be a non-empty string")
        v = c_uint64()
        rc = lib.paramd_table_stat(self._handle(), int(server), counter.encode(), v)
        if rc:
            raise self.client._error(rc)
        return v.value

    @property
    def clock(self):
        """sync/ssp tables: the newest applied clock a finished pull of
        this table saw (paramd_table_clock); 0 for async tables."""
        return lib.paramd_table_clock(self._handle())


class Table(_TableBase):
    """A dense table: `size` float32, addressed by offset."""

    def __init__(self, client, handle, name, spec):
        super().__init__(client, handle, name, spec)
        self.size = lib.paramd_table_size(handle)

    def __repr__(self):
        return "<paramd.Table %r of %d floats>" % (self.name, self.size)

    def _range(self, out, offset, count, op):
        offset = _index(offset, op + ": offset")
        if out is not None:
            out = _out_f32(out, "out")
            n = out.size
            if count is not None and _index(count, op + ": count") != n:
                raise errors.bad_argument("%s: out has %d floats but count is %d"
                                          % (op, n, count))
            count = n
        elif count is None:
            if offset > self.size:
                raise errors.error(-9, "%s of table '%s': offset %d is past its %d floats"
                                   % (op, self.name, offset, self.size))
            count = self.size - offset
        else:
            count = _index(count, op + ": count")
        if out is None:
            out = np.empty(count, dtype=_F32)
        return out, offset, count

    def pull(self, out=None, offset=0, count=None):
        """Pull floats [offset, offset+count) into `out` (a new array if
        None) and return it.  count defaults to out.size, or to the rest
        of the table."""
        out, offset, count = self._range(out, offset, count, "pull")
        rc = lib.paramd_pull(self._handle(), offset, count, _addr(out))
        if rc:
            raise self.client._error(rc)
        return out

    def push(self, grad, offset=0):
        """Push `grad` (any shape; its floats in order) for
        [offset, offset+grad.size), tagged with the client's clock."""
        g = _in_f32(grad, "grad")
        offset = _index(offset, "push: offset")
        rc = lib.paramd_push(self._handle(), offset, g.size, _addr(g))
        if rc:
            raise self.client._error(rc)

    def pull_async(self, out=None, offset=0, count=None):
        """Start a pull; the returned Request's wait() gives `out`.  Do not
        touch `out` before then."""
        out, offset, count = self._range(out, offset, count, "pull")
        req = c_void_p()
        rc = lib.paramd_pull_async(self._handle(), offset, count, _addr(out), req)
        return self.client._request(rc, req, out, (out,))

    def push_async(self, grad, offset=0):
        """Start a push; do not change `grad` before the Request's wait()."""
        g = _in_f32(grad, "grad")
        offset = _index(offset, "push: offset")
        req = c_void_p()
        rc = lib.paramd_push_async(self._handle(), offset, g.size, _addr(g), req)
        return self.client._request(rc, req, None, (g, grad))


class SparseTable(_TableBase):
    """A sparse table: uint64 keys, each with a row of `dim` float32."""

    def __init__(self, client, handle, name, spec):
        super().__init__(client, handle, name, spec)
        self.dim = lib.paramd_table_dim(handle)

    def __repr__(self):
        return "<paramd.SparseTable %r, rows of %d floats>" % (self.name, self.dim)

    def _rows(self, keys, out):
        k = _keys(keys)
        if out is None:
            out = np.empty((k.size, self.dim), dtype=_F32)
        else:
            out = _out_f32(out, "out")
            if out.shape != (k.size, self.dim):
                raise errors.bad_argument("out has shape %s; %d keys of dim %d need (%d, %d)"
                                          % (out.shape, k.size, self.dim, k.size, self.dim))
        return k, out

    def _grads(self, keys, grads):
        k = _keys(keys)
        g = _in_f32(grads, "grads")
        if g.shape != (k.size, self.dim):
            raise errors.bad_argument("grads has shape %s; %d keys of dim %d need (%d, %d)"
                                      % (g.shape, k.size, self.dim, k.size, self.dim))
        return k, g

    def pull(self, keys, out=None):
        """The rows of `keys`, as an array of shape (len(keys), dim)."""
        k, out = self._rows(keys, out)
        rc = lib.paramd_sparse_pull(self._handle(), _addr(k), k.size, _addr(out))
        if rc:
            raise self.client._error(rc)
        return out

    def push(self, keys, grads):
        """Push one gradient row per key (grads of shape (len(keys), dim))."""
        k, g = self._grads(keys, grads)
        rc = lib.paramd_sparse_push(self._handle(), _addr(k), k.size, _addr(g))
        if rc:
            raise self.client._error(rc)

    def pull_async(self, keys, out=None):
        k, out = self._rows(keys, out)
        req = c_void_p()
        rc = lib.paramd_sparse_pull_async(self._handle(), _addr(k), k.size, _addr(out), req)
        return self.client._request(rc, req, out, (k, out))

    def push_async(self, keys, grads):
        k, g = self._grads(keys, grads)
        req = c_void_p()
        rc = lib.paramd_sparse_push_async(self._handle(), _addr(k), k.size, _addr(g), req)
        return self.client._request(rc, req, None, (k, g, grads))


# ==== Client ===============================================================

class Client:
    """A worker connected to a cluster; see connect()."""

    def __init__(self, handle):
        self._h = handle
        self._closing = False
        self._lock = threading.Lock()
        self._pending = set()
        self._shared = {}      # address -> bytes, buffers from alloc()
        self._on_close = []    # callables run before the memory goes
        self.rank = lib.paramd_rank(handle)
        self.num_workers = lib.paramd_num_workers(handle)
        self.num_servers = lib.paramd_num_servers(handle)

    def __repr__(self):
        state = "closed" if self._h is None else "rank %d of %d workers, %d servers" % (
            self.rank, self.num_workers, self.num_servers)
        return "<paramd.Client %s>" % state

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- internals ----------------------------------------------------------

    def _handle(self):
        h = self._h
        if h is None:
            raise errors.bad_argument("this paramd client is closed")
        return h

    def _error(self, rc):
        return errors.error(rc, _text(lib.paramd_last_error(self._h)))

    def _request(self, rc, req, result, keep):
        if rc:
            raise self._error(rc)
        r = Request(self, req, result, keep)
        with self._lock:
            self._pending.add(r)
        return r

    def _forget(self, r):
        with self._lock:
            self._pending.discard(r)

    # -- the API ------------------------------------------------------------

    @property
    def closed(self):
        return self._h is None

    @property
    def last_error(self):
        """The detail of the last failure on this client ("" if none)."""
        return _text(lib.paramd_last_error(self._h)) if self._h else ""

    def close(self):
        """Wait for requests never waited for, run close hooks (paramd.torch
        moves its modules' parameters out of shared memory here), say
        goodbye, free everything.  Harmless when closed already.  Raises
        the first error met (the client is closed in every case)."""
        with self._lock:
            if self._h is None or self._closing:
                return
            self._closing = True
            pending = list(self._pending)
            hooks, self._on_close = self._on_close, []
        first = None
        try:
            for r in pending:
                try:
                    r.wait()
                except errors.Error as e:
                    first = first or e
            for f in hooks:
                f()
        finally:
            h, self._h = self._h, None
            self._shared.clear()
            rc = lib.paramd_close(h)
        if rc and first is None:
            first = errors.error(rc, "paramd_close failed")
        if first is not None:
            raise first

    def table(self, name, size, init=None, spec=None, **spec_keys):
        """Create or open the dense table `name` of `size` float32.  The
        spec is `spec` (a string of key=value pairs) and/or keyword
        arguments: rule="sgd", lr=0.1, consistency="sync", aggregate="sum",
        ... (paramd.h, paramd_table_open).  `init`: size floats, the
        initial values (used by the worker that creates the table)."""
        if not isinstance(name, str) or not name:
            raise errors.bad_argument("table: the name must be a non-empty string")
        size = _index(size, "table: size")
        if init is not None:
            init = _in_f32(init, "init")
            if init.size != size:
                raise errors.bad_argument("table '%s': init has %d floats, the table %d"
                                          % (name, init.size, size))
        s = _options(spec, spec_keys, "table '%s' spec" % name)
        out = c_void_p()
        rc = lib.paramd_table_open(self._handle(), name.encode(), size, s,
                                   None if init is None else _addr(init), out)
        if rc:
            raise self._error(rc)
        return Table(self, out.value, name, s.decode() if s else "")

    def sparse_table(self, name, dim, spec=None, **spec_keys):
        """Create or open the sparse table `name` with rows of `dim` floats
        (paramd_sparse_open); spec keys as for table(), plus
        init="uniform:0.1" and seed=N."""
        if not isinstance(name, str) or not name:
            raise errors.bad_argument("sparse_table: the name must be a non-empty string")
        dim = _index(dim, "sparse_table: dim")
        s = _options(spec, spec_keys, "sparse table '%s' spec" % name)
        out = c_void_p()
        rc = lib.paramd_sparse_open(self._handle(), name.encode(), dim, s, out)
        if rc:
            raise self._error(rc)
        return SparseTable(self, out.value, name, s.decode() if s else "")

    def alloc(self, shape):
        """A zeroed float32 array of `shape` in shared memory
        (paramd_alloc): pulls into it and pushes from it move no floats
        through the connection to servers on this host.  Valid until
        free(arr) or close()."""
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        n = 1
        for d in shape:
            n *= _index(d, "alloc: a dimension")
        if n == 0:
            raise errors.bad_argument("alloc: shape %s has no elements" % (shape,))
        h = self._handle()
        p = lib.paramd_alloc(h, n * 4)
        if not p:
            raise errors.error(-2, _text(lib.paramd_last_error(h)) or "paramd_alloc failed")
        self._shared[p] = n * 4
        buf = (ctypes.c_float * n).from_address(p)
        return np.frombuffer(buf, dtype=_F32).reshape(shape)

    def free(self, arr):
        """Release an array from alloc() (no request on it may be in
        flight); it must not be used after."""
        a = _view(arr, "free: arr")
        p = _addr(a)
        if p not in self._shared:
            raise errors.bad_argument("free: this array is not one alloc() returned "
                                      "(or it was freed already)")
        del self._shared[p]
        rc = lib.paramd_free(self._handle(), p)
        if rc:
            raise self._error(rc)

    def is_shared(self, arr):
        """True if arr's memory is inside a buffer from alloc()."""
        a = _view(arr, "arr")
        p = _addr(a)
        return p is not None and any(b <= p and p + a.nbytes <= b + n
                                     for b, n in self._shared.items())

    def clock(self):
        """Advance this worker's clock by one; returns the new clock."""
        return lib.paramd_clock(self._handle())

    def clock_to(self, clock):
        """Move the clock forward to `clock` (never back); returns it."""
        return lib.paramd_clock_to(self._handle(), _index(clock, "clock_to"))

    @property
    def current_clock(self):
        """This worker's clock (paramd_get_clock)."""
        return lib.paramd_get_clock(self._handle())

    @property
    def barrier_count(self):
        """Barriers the cluster released before this worker got its rank,
        plus the ones it passed since (paramd_barrier_count): a worker that
        joined a running cluster skips a start barrier already past."""
        return lib.paramd_barrier_count(self._handle())

    def barrier(self):
        """Wait until every worker still in the cluster reached it."""
        rc = lib.paramd_barrier(self._handle())
        if rc:
            raise self._error(rc)

    def flush(self):
        """Send small async requests still waiting in an outbox now."""
        lib.paramd_flush(self._handle())


def connect(options=None, **keys):
    """Connect to a cluster (paramd_connect) and return a Client.

    `options` is a string of key=value pairs and/or keyword arguments:
    coordinator="HOST:PORT", rank=N, timeout_ms=N, op_timeout_ms=N,
    transport="shm", ...
    (paramd.h); what is not given comes from the environment
    (PARAMD_COORDINATOR, PARAMD_RANK, ...), as `paramd local` and
    paramd.local() set it.  Use it in a `with` block, or call close()."""
    s = _options(options, keys, "connect options")
    out = c_void_p()
    rc = lib.paramd_connect(out, s)
    if rc:
        raise errors.error(rc, _text(lib.paramd_last_error(None)))
    return Client(out.value)
