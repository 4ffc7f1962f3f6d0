"""glibc malloc settings for request bodies, applied by the master before forking."""

from __future__ import annotations

import os

# glibc mallopt() parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024


def tune_malloc() -> bool:
    """Keep the memory request bodies come and go in, instead of returning it each time.

    glibc gives freed memory back to the kernel once 128 KiB sit free at the
    top of the heap, and serves allocations past 128 KiB with their own mmap.
    A worker buffering 1 MiB uploads then re-faults every page of every body:
    measured, a third of its CPU went to page faults and 1 MiB uploads ran at
    1.3 ms of CPU each; with these two settings, 0.35 ms. In threads mode the
    loop buffers the bodies of every connection waiting for a thread (64 clients,
    8 threads: up to 64 MiB alive), so the heap swings by more than 32 MiB; with
    a 32 MiB trim threshold glibc still gave it back each time (876 µs per 1 MiB
    upload, 0.7 brk calls per request), with 64 MiB, 473 µs. The price: up to
    TRIM_THRESHOLD_BYTES of freed memory stays in a worker after a burst.
    Returns False (and changes nothing) off glibc, or when the operator set
    ``MALLOC_TRIM_THRESHOLD_`` or ``MALLOC_MMAP_THRESHOLD_`` (theirs wins).
    The master calls it before forking: the settings are inherited.
    """
    if "MALLOC_TRIM_THRESHOLD_" in os.environ or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (ImportError, OSError, AttributeError):  # not glibc (musl, macOS), or no ctypes
        return False
    return bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
        and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    )
