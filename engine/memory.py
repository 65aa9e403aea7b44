"""Keep a long run's memory from creeping up with the number of calls made.

Request bodies with images are large (hundreds of kilobytes). glibc's malloc serves
such buffers with mmap and returns them to the system when freed, but every such
free also raises its mmap threshold, after which the same sizes are carved from the
heap instead, where the churn of thousands of bodies fragments it: the resident size
then grows with the length of the run, not with the calls in flight. Fixing the
threshold keeps large buffers on mmap for good.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

__all__ = ["keep_large_buffers_off_the_heap"]

logger = logging.getLogger(__name__)

# mallopt(3): the parameter number of M_MMAP_THRESHOLD, and the threshold we fix,
# glibc's own starting value.
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 128 * 1024


def keep_large_buffers_off_the_heap() -> bool:
    """Fix glibc's mmap threshold for this process; return whether it was set.

    Meant for programs (the command line, benchmarks), once at start-up; it does
    nothing where the C library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        done = bool(libc.mallopt(_M_MMAP_THRESHOLD, _THRESHOLD))
    except (OSError, AttributeError):
        return False
    if not done:
        logger.debug("mallopt refused to fix the mmap threshold")
    return done
