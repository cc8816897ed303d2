"""Video frames go back to the operating system when they are freed.

glibc serves a large allocation with its own memory mapping, until a mapped block is freed: then it
raises that threshold (up to 32 MB), and from there on every 1080p frame (6 MB) is carved out of the heap
arenas of the threads that decode, estimate poses and classify. Freed frames then stay resident,
fragmented across arenas, and the peak memory of a long video depends on thread timing. A fixed
threshold keeps each frame its own mapping, returned when it is freed. Applications call this once at
start (the ``unihar`` command, batch workers); a library user's process is left as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["return_large_buffers_to_the_os"]

_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h
_THRESHOLD_BYTES = 1 << 20  # larger blocks (frames, not the small objects of Python) get their own mapping


def return_large_buffers_to_the_os() -> bool:
    """Fix glibc's mapping threshold at 1 MB; False where the C library is not glibc (nothing changed)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD_BYTES))
