"""Giving memory back to the operating system after a large response.

Listing thousands of objects allocates tens of megabytes for a moment (rows from sqlite,
JSON, table cells). CPython frees them, but glibc keeps the freed heap pages, so the
server's RSS would stay at its high-water mark. ``malloc_trim(0)`` returns them; the API
server calls :func:`release_memory` (on its clock, after the response) when a response was
large. Elsewhere than glibc this is a no-op.
"""

import ctypes
import ctypes.util

__all__ = ["release_memory", "LARGE_RESPONSE"]

#: Responses at least this big (bytes) are followed by a trim.
LARGE_RESPONSE = 1024 * 1024

_trim = None
_loaded = False


def _load():
    global _trim, _loaded
    _loaded = True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _trim = libc.malloc_trim
        _trim.argtypes = [ctypes.c_size_t]
        _trim.restype = ctypes.c_int
    except (OSError, AttributeError):  # not glibc: nothing to trim
        _trim = None


def release_memory():
    """Return freed heap memory to the OS; True when glibc's malloc_trim ran."""
    if not _loaded:
        _load()
    if _trim is None:
        return False
    _trim(0)
    return True
