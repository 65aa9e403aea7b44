"""Process settings for programs that make many thousands of calls.

Two defaults of CPython and glibc suit short scripts and cost a long run dearly;
:func:`tune_for_many_calls` changes both. They are process-wide, so the library never
applies them itself: the command line and the benchmark clients do, at start-up, and
a program using the engine as a library may.

Memory: request bodies with images are large (hundreds of kilobytes). glibc's malloc
serves such buffers with mmap and returns them to the system when freed, but every
such free also raises its mmap threshold, after which the same sizes are carved from
the heap instead, where the churn of thousands of bodies fragments it: the resident
size then grows with the length of the run, not with the calls in flight. Fixing the
threshold keeps large buffers on mmap for good.

CPU: the cyclic garbage collector runs a young-generation pass every 700 net
allocations of container objects, and every object that outlives two passes is
promoted and then scanned again by each full collection. A call in flight lives for
seconds, so with thousands in flight nearly every object of every call is promoted;
at 4,096 calls in flight collection took about a third of a client's CPU time in the
benchmarks while finding almost no garbage (reference counting frees nearly all of
it). A higher first threshold makes passes rarer and lets short-lived objects die
young. The count is net of frees, and frees of promoted objects count too, so a pass
can find the whole state of every call in flight in the young generation (300,000
objects at 4,096 in flight, a quarter of a second to scan); what sets how often that
happens is how many objects the program keeps per call (the engine keeps each
answer), which is why the threshold is high.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import sys

__all__ = [
    "collect_garbage_less_often",
    "keep_large_buffers_off_the_heap",
    "tune_for_many_calls",
]

logger = logging.getLogger(__name__)

# mallopt(3): the parameter number of M_MMAP_THRESHOLD, and the threshold we fix,
# glibc's own starting value.
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 128 * 1024

# Net allocations between young-generation collections (CPython's default is 700).
YOUNG_THRESHOLD = 200_000


def tune_for_many_calls() -> None:
    """Apply both settings below; meant for programs, once at start-up."""
    keep_large_buffers_off_the_heap()
    collect_garbage_less_often()


def keep_large_buffers_off_the_heap() -> bool:
    """Fix glibc's mmap threshold for this process; return whether it was set.

    It does nothing where the C library is not glibc.
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


def collect_garbage_less_often(young: int = YOUNG_THRESHOLD) -> None:
    """Raise the collector's first threshold to ``young`` (never lower it).

    The older generations keep their thresholds, relative to the first.
    """
    first, *older = gc.get_threshold()
    if first != 0 and first < young:  # 0: automatic collection is off
        gc.set_threshold(young, *older)
