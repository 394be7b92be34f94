"""glibc allocator settings for a process that passes many multi-megabyte buffers through threads.

The bot handles input images (4-10 MB each), their decoded pixels (12 MB for 2000x2000 RGB, in a
worker thread) and results at the same time. With glibc's defaults two things keep freed memory in
the process: its mmap threshold is dynamic (after a 12 MB buffer is freed, buffers up to that size
come from the heap instead of their own mapping, and heap pages stay with the process), and every
worker thread may get its own arena. A fixed 1 MB threshold hands every large buffer back to the
system when it is freed, and two arenas are plenty for an event loop plus a few image threads
(bench/e2e.py: the bot's peak RSS). Settings given in the environment (`MALLOC_ARENA_MAX`,
`MALLOC_MMAP_THRESHOLD_`) win; on other C libraries and systems this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 1024 * 1024
ARENA_MAX = 2


def tune_allocator() -> bool:
    """Apply the settings above; True if glibc took them."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (musl has no mallopt)
    ok = True
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and ok
    if "MALLOC_ARENA_MAX" not in os.environ:
        ok = bool(mallopt(M_ARENA_MAX, ARENA_MAX)) and ok
    log.debug("allocator tuned: %s", ok)
    return ok
