"""_lib.py - find libparamd, declare its functions for ctypes, check its version.

The package is pure Python over the public C header (include/paramd.h):
no compiled extension, so it installs offline with Debian's python3.
Every function of the header is declared here once, with its argument and
result types; the rest of the package calls them through `lib`.

Which library.  The first of these that exists is loaded:

  1. $PARAMD_LIBRARY, a path to libparamd.so (for a build tree, a test,
     or a library elsewhere);
  2. the library `make install` put beside this package (its absolute
     path is written into _paths.py at install time);
  3. build/libparamd.so of the source tree this package sits in, when it
     is imported from python/ of a checkout;
  4. the soname, through the dynamic linker's search path
     (LD_LIBRARY_PATH, ld.so.cache).

Version.  The package and the library must be the same MAJOR.MINOR: the
library's ABI (the functions below and what they mean) may change between
minor versions before 1.0.  A mismatch is an ImportError naming both
versions and the library's path.  A different PATCH is accepted: patch
releases fix bugs and keep the ABI.

Threads.  ctypes releases the GIL around every foreign call, so a blocking
pull in one Python thread lets the others run; the library's own rules
for which calls may run in parallel are those of paramd.h.
"""

import ctypes
import os

from . import _paths
from ._version import __version__

_VERSION = tuple(int(x) for x in __version__.split("."))
SONAME = "libparamd.so.%d.%d" % _VERSION[:2]

c_int, c_int32, c_int64 = ctypes.c_int, ctypes.c_int32, ctypes.c_int64
c_uint32, c_uint64, c_size_t = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_size_t
c_char_p, c_void_p = ctypes.c_char_p, ctypes.c_void_p
P_void = ctypes.POINTER(c_void_p)
P_uint64 = ctypes.POINTER(c_uint64)

# name: (result type, argument types); floats and keys are passed as
# addresses (c_void_p), so that a numpy array's memory goes in as it is.
_FUNCS = {
    "paramd_version": (c_uint32, []),
    "paramd_version_string": (c_char_p, []),
    "paramd_strerror": (c_char_p, [c_int]),
    "paramd_err_name": (c_char_p, [c_int]),
    "paramd_connect": (c_int, [P_void, c_char_p]),
    "paramd_close": (c_int, [c_void_p]),
    "paramd_alloc": (c_void_p, [c_void_p, c_size_t]),
    "paramd_free": (c_int, [c_void_p, c_void_p]),
    "paramd_last_error": (c_char_p, [c_void_p]),
    "paramd_rank": (c_int32, [c_void_p]),
    "paramd_num_workers": (c_int32, [c_void_p]),
    "paramd_num_servers": (c_int32, [c_void_p]),
    "paramd_table_open": (c_int, [c_void_p, c_char_p, c_uint64, c_char_p, c_void_p, P_void]),
    "paramd_table_size": (c_uint64, [c_void_p]),
    "paramd_table_clock": (c_int64, [c_void_p]),
    "paramd_pull": (c_int, [c_void_p, c_uint64, c_uint64, c_void_p]),
    "paramd_push": (c_int, [c_void_p, c_uint64, c_uint64, c_void_p]),
    "paramd_pull_async": (c_int, [c_void_p, c_uint64, c_uint64, c_void_p, P_void]),
    "paramd_push_async": (c_int, [c_void_p, c_uint64, c_uint64, c_void_p, P_void]),
    "paramd_wait": (c_int, [c_void_p]),
    "paramd_flush": (None, [c_void_p]),
    "paramd_sparse_open": (c_int, [c_void_p, c_char_p, c_uint32, c_char_p, P_void]),
    "paramd_table_dim": (c_uint32, [c_void_p]),
    "paramd_sparse_pull": (c_int, [c_void_p, c_void_p, c_uint64, c_void_p]),
    "paramd_sparse_push": (c_int, [c_void_p, c_void_p, c_uint64, c_void_p]),
    "paramd_sparse_pull_async": (c_int, [c_void_p, c_void_p, c_uint64, c_void_p, P_void]),
    "paramd_sparse_push_async": (c_int, [c_void_p, c_void_p, c_uint64, c_void_p, P_void]),
    "paramd_table_stat": (c_int, [c_void_p, c_int32, c_char_p, P_uint64]),
    "paramd_clock": (c_int64, [c_void_p]),
    "paramd_clock_to": (c_int64, [c_void_p, c_int64]),
    "paramd_get_clock": (c_int64, [c_void_p]),
    "paramd_barrier": (c_int, [c_void_p]),
    "paramd_barrier_count": (c_uint64, [c_void_p]),
}


def _candidates():
    env = os.environ.get("PARAMD_LIBRARY")
    if env:
        return [("$PARAMD_LIBRARY", env)]
    out = []
    if _paths.LIBRARY:
        out.append(("the installed library", _paths.LIBRARY))
    here = os.path.dirname(os.path.abspath(__file__))
    tree = os.path.join(os.path.dirname(os.path.dirname(here)), "build", "libparamd.so")
    if os.path.exists(tree):
        out.append(("the source tree's build", tree))
    out.append(("the dynamic linker's search path", SONAME))
    return out


def _load():
    tried = []
    for where, path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append("%s (%s): no such file" % (path, where))
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append("%s (%s): %s" % (path, where, e))
    raise ImportError(
        "paramd: cannot load the C library libparamd; tried:\n  " + "\n  ".join(tried)
        + "\nbuild it (make build) or install it (make install), or set "
        "PARAMD_LIBRARY=/path/to/libparamd.so")


def check_version(lib_hex, path):
    """ImportError unless the library's version (PARAMD_VERSION_HEX form)
    has this package's MAJOR.MINOR."""
    have = (lib_hex >> 16, (lib_hex >> 8) & 0xFF, lib_hex & 0xFF)
    if have[:2] != _VERSION[:2]:
        raise ImportError(
            "paramd: the Python package is version %s but the C library %s is "
            "version %d.%d.%d; they must have the same MAJOR.MINOR: install both "
            "from one source tree (make install), or point PARAMD_LIBRARY at the "
            "matching libparamd.so" % (__version__, path, have[0], have[1], have[2]))
    return have


lib, path = _load()
# The version first: an older library may lack later functions, and its
# version says more than a missing name.
try:
    lib.paramd_version.restype = c_uint32
    lib.paramd_version.argtypes = []
except AttributeError:
    raise ImportError("paramd: %s is not libparamd (it has no paramd_version)" % path) from None
library_version = check_version(lib.paramd_version(), path)
for _name, (_res, _args) in _FUNCS.items():
    try:
        _f = getattr(lib, _name)
    except AttributeError:
        raise ImportError("paramd: %s has no function %s: it is not a libparamd %s"
                          % (path, _name, __version__)) from None
    _f.restype = _res
    _f.argtypes = _args
