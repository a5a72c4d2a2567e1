"""The package's version: the same as PARAMD_VERSION_* in include/paramd.h
(a test checks it)."""
__version__ = "0.1.0"
