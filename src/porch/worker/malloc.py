"""glibc malloc settings for request bodies, applied by the master before forking,
and the idle worker's trim that gives a burst's freed memory back."""

from __future__ import annotations

import os
from collections.abc import Callable

# glibc mallopt() parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024

# glibc's malloc_trim, once tune_malloc changed the settings (workers inherit it).
_malloc_trim: Callable[[int], int] | None = None


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
    TRIM_THRESHOLD_BYTES of freed memory stays in a worker after a burst, until
    the worker goes idle and calls ``release_free_memory``.
    Returns False (and changes nothing) off glibc, or when the operator set
    ``MALLOC_TRIM_THRESHOLD_`` or ``MALLOC_MMAP_THRESHOLD_`` (theirs wins).
    The master calls it before forking: the settings are inherited.
    """
    global _malloc_trim
    if "MALLOC_TRIM_THRESHOLD_" in os.environ or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (ImportError, OSError, AttributeError):  # not glibc (musl, macOS), or no ctypes
        return False
    tuned = bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
        and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    )
    if tuned:
        _malloc_trim = malloc_trim
    return tuned


def release_free_memory() -> bool:
    """Give the kernel the free pages of glibc's heaps (``malloc_trim(0)``).

    The worker calls it when it goes idle, so the memory a burst of large bodies
    freed, which the raised trim threshold keeps for the next burst, returns to the
    system once the burst is over. A few hundred microseconds for a heap of tens of
    MiB. Returns False (and does nothing) when ``tune_malloc`` changed nothing:
    glibc's own threshold then trims as memory is freed.
    """
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True
