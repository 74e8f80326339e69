"""glibc's allocator, told to keep freed memory for reuse (the worker, and the bench measuring it).

A scoring batch allocates numpy temporaries of 100-500 KB (a batch of windows is [64, 49, 34]).
Above glibc's mmap threshold (128 KB at start) each one is a fresh ``mmap`` and every page of it
faults on first touch; memory freed at the top of the heap is returned to the kernel and faults
again on the next batch. In this project's VMs those page faults cost more than the arithmetic:
planning a batch of 64 patients took 270 µs of CPU per patient with glibc's defaults and 100 µs
with the thresholds below (docs/performance.md, "Batched planning"). The price is that the worker
keeps up to ``trim_threshold`` of freed heap mapped: a few tens of MB at the bench's batch sizes.
"""

from __future__ import annotations

import ctypes
import ctypes.util

from vigil.infra.logging import get_logger

log = get_logger(__name__)

# mallopt(3) parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's ceiling for this parameter on 64-bit
TRIM_THRESHOLD_BYTES = 128 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Serve allocations under 32 MB from the heap and keep up to 128 MB of freed heap. False (and
    nothing changed) where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        log.info("allocator.unchanged", reason="no glibc mallopt")
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    if not ok:
        log.info("allocator.unchanged", reason="mallopt refused")
    return ok
