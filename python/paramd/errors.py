"""errors.py - every paramd error code as a Python exception.

paramd.h defines the codes once (PARAMD_ERRNO_MAP); this file gives each
one a class, a subclass of paramd.Error, and where a built-in exception
means the same thing, of that too (InvalidArgumentError is a ValueError,
TimedOutError a TimeoutError, the three connection codes
ConnectionError), so that code written against the built-ins catches
them.  Every instance carries:

  code     the negative C code (paramd.h), e.g. -9
  name     its C name, "PARAMD_ERANGE"
  message  the library's detail (paramd_last_error), e.g. "server 1: table
           'w' has 10 floats, request ends at 12"

Arguments the binding itself refuses before calling C (a float64 array, a
non-contiguous one, a wrong shape) raise InvalidArgumentError with code
PARAMD_EINVAL, exactly as if the library had refused them.

A test checks that this table covers every code of the header and that
the names agree with paramd_err_name().
"""


class Error(Exception):
    """A paramd call failed.  .code, .name (C name), .message (detail)."""

    code = 0
    name = "PARAMD_OK"

    def __init__(self, message, code=None):
        if code is not None:
            self.code = code
        self.message = message
        super().__init__(message)

    def __str__(self):
        return "%s (%s)" % (self.message, self.name) if self.message else self.name


def _cls(cname, code, doc, *bases):
    return type(cname, (Error,) + bases, {"code": code, "name": "PARAMD_" + doc[0],
                                          "__doc__": doc[1]})


# code: (class name, (C name without PARAMD_, what it means), built-in bases)
_TABLE = {
    -1: ("InvalidArgumentError", ("EINVAL", "invalid argument"), (ValueError,)),
    -2: ("OutOfMemoryError", ("ENOMEM", "out of memory"), (MemoryError,)),
    -3: ("LinkIOError", ("EIO", "I/O error on a connection"), (ConnectionError,)),
    -4: ("ConnectFailedError", ("ECONNECT", "cannot connect"), (ConnectionError,)),
    -5: ("ConnectionClosedError", ("ECLOSED", "connection closed by peer"), (ConnectionError,)),
    -6: ("ProtocolError", ("EPROTO", "protocol error (malformed or unexpected frame)"), ()),
    -7: ("VersionMismatchError", ("EVERSION", "protocol version mismatch"), ()),
    -8: ("NoSuchTableError", ("ENOTABLE", "no such table"), (LookupError,)),
    -9: ("RangeError", ("ERANGE", "range outside the table"), (IndexError,)),
    -10: ("SpecMismatchError", ("ESPEC", "table exists with a different specification"), ()),
    -11: ("StalePushError", ("ESTALE", "push for a clock that was already applied"), ()),
    -12: ("DuplicatePushError", ("EDUP", "duplicate push for this clock"), ()),
    -13: ("UnknownWorkerError", ("EWORKER", "unknown worker rank"), ()),
    -14: ("ClockAheadError", ("EAHEAD", "clock too far ahead of the table"), ()),
    -15: ("DeadlockError", ("EDEADLOCK", "pull would wait on the caller's own missing push"), ()),
    -16: ("TooBigError", ("ETOOBIG", "request larger than the configured maximum"), ()),
    -17: ("ShutdownError", ("ESHUTDOWN", "cluster is shutting down"), ()),
    -18: ("TimedOutError", ("ETIMEDOUT", "timed out"), (TimeoutError,)),
    -19: ("ConfigError", ("ECONFIG", "bad cluster configuration or environment"), ()),
    -20: ("InternalError", ("EINTERNAL", "internal error"), ()),
    -21: ("LimitError", ("ELIMIT", "a configured limit was reached (docs/limits.md)"), ()),
    -22: ("AuthError", ("EAUTH", "authentication failed (cluster secret)"), (PermissionError,)),
}

BY_CODE = {}
for _code, (_name, _doc, _bases) in _TABLE.items():
    BY_CODE[_code] = _cls(_name, _code, _doc, *_bases)
    globals()[_name] = BY_CODE[_code]
__all__ = ["Error"] + [v[0] for v in _TABLE.values()]


def error(code, message):
    """The exception for a C result code (an unknown code gives a plain
    Error carrying it)."""
    cls = BY_CODE.get(code)
    if cls is None:
        e = Error(message, code)
        e.name = "PARAMD_E?%d" % code
        return e
    return cls(message)


def bad_argument(message):
    """What the binding raises for an argument it refuses itself."""
    return BY_CODE[-1](message)
