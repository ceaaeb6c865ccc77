"""Process-wide glibc malloc tuning for CPU inference.

glibc serves allocations above its mmap threshold with fresh mmap()s and returns them on free, so
every forward pass page-faults its activations in again: measured here, an int8 linear layer on
2048 tokens took 8.8 ms with the defaults and 1.9 ms once freed activation memory was kept. We keep
blocks up to 64 MiB on the heap (activations of a 2048-token pass are ~12 MiB) while larger ones —
model weights — stay mmapped, so evicting a model still returns its memory to the OS.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


@functools.cache
def keep_activation_memory(mmap_threshold: int = 64 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Apply once per process; returns False where this is not glibc (nothing changes there)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_TRIM_THRESHOLD, trim_threshold))
