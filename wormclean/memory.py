"""How this process's memory serves a net on the CPU."""

from __future__ import annotations

import ctypes
import functools
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (glibc's malloc.h)
KEEP_FREED_BYTES = 1 << 30
"""Blocks up to this size are taken from, and given back to, the heap that malloc keeps (see keep_freed_memory)."""


@functools.cache
def keep_freed_memory() -> bool:
    """Let this process's malloc keep large freed blocks for the next allocation instead of giving them back
    to the system, where glibc is the C library (Linux); True where that took effect.

    By default glibc maps every block over 32 MB afresh and unmaps it when freed, so each of a CPU net's
    feature maps (tens to hundreds of MB for a 1024x1024 tile) is faulted in page by page from zeroed memory:
    820,000 page faults and half the CPU time of a pass of the shipped model over a 2048x2048 frame here. Kept
    in the heap, the same pass takes 1.0 s against 2.0 s, and a training step of 16 patches of 256x256 runs
    2.4-2.7x as fast (width 16; 1.5-1.8x at width 48, ``benchmarks/bench_fit.py``), for a peak memory about
    a third larger (blocks freed in one place are not always reused in another). A
    :class:`~wormclean.predict.cleaner.Cleaner` on the CPU and each training run on the CPU call it; it acts
    once per process.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # another C library (musl), or none by that name
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, KEEP_FREED_BYTES)) & bool(mallopt(_M_TRIM_THRESHOLD, KEEP_FREED_BYTES))
