"""Pausing the cyclic garbage collector around batch work (validating or dumping documents).

Building or dumping a batch of documents allocates several objects per document, none of them
in a reference cycle. With the collector on, CPython runs a young-generation collection every
few hundred allocations, and each one walks the fresh objects again. Pausing it for the batch
is safe (nothing cyclic is made) and it runs normally after.

Pausing alone only defers that work: the first young collection after the pause would walk
every object of the batch (~1 µs per document of ten fields), and the next middle-generation
one again. So a batch of :data:`PROMOTE_BATCH` documents or more that ends normally hands every
tracked object to the oldest generation at once (``gc.freeze()`` then ``gc.unfreeze()``: two
list splices, whatever the size), where the full collections see them as they see any
long-lived object. The cost is that the program's other young objects are promoted too: a
reference cycle made elsewhere just before is freed by a later full collection rather than by
the next young one. Hence the threshold: a page of results (tens of documents) never does it,
a bulk load (``await Model.objects`` of thousands, a stream's batches, a split
``bulk_create``) does, where it saves 8-17 % of the load (measured on ``await
Model.objects`` and on a stream). A process whose own code freezes objects (``gc.freeze()``
before forking workers) is left alone: unfreezing would give its frozen objects back to the
collector, so there batches end with the plain re-enable (CPython 3.12 is such a process
from start-up: it keeps a few hundred objects of its own frozen); so do those of the
free-threaded build and of CPython 3.14 and later, where freezing is not known to be two list
splices.
"""

from __future__ import annotations

import gc
import os
import sys
import sysconfig
from types import TracebackType

__all__ = ["MIN_BATCH", "PROMOTE_BATCH", "PROMOTION_AVAILABLE", "paused_gc", "promotes_batches"]

#: Batches shorter than this are not worth pausing the collector for.
MIN_BATCH = 64
#: Batches this long or longer end with their objects promoted to the oldest generation.
PROMOTE_BATCH = 1000

#: Whether long batches are promoted on this Python: freezing is two list splices on CPython
#: 3.11 to 3.13's default build, whatever the heap's size; the free-threaded
#: build marks every object of the heap instead, and 3.14's incremental collector may walk an
#: old space, so there batches end with the plain re-enable.
PROMOTION_AVAILABLE = sys.version_info < (3, 14) and not sysconfig.get_config_var("Py_GIL_DISABLED")

# The pid of a process found keeping frozen objects of its own.
_freezer: int | None = None


def _process_freezes() -> bool:
    """Tell whether this process keeps objects frozen with ``gc.freeze()``. Asked again at
    each batch while nothing is frozen (``gc.get_freeze_count()`` walks the frozen objects:
    none, then); once some are, the answer is kept for the process (a forked child asks
    again)."""
    global _freezer
    pid = os.getpid()
    if _freezer == pid:
        return True
    if gc.get_freeze_count() > 0:
        _freezer = pid
        return True
    return False


def promotes_batches() -> bool:
    """Tell whether long batches end with their objects promoted in this process (this
    Python allows it and nothing of the process is frozen)."""
    return PROMOTION_AVAILABLE and not _process_freezes()


def _promote_young_objects() -> None:
    """Move every object of the young generations to the oldest one without walking them."""
    if promotes_batches():
        gc.freeze()
        gc.unfreeze()


class paused_gc:
    """Pause the cyclic GC inside the block when ``size`` reaches :data:`MIN_BATCH` and the GC
    is on, and promote the block's objects to the oldest generation when it ends normally and
    ``size`` reaches :data:`PROMOTE_BATCH`; leave it alone otherwise (also when an enclosing
    block already paused it, which then decides). A class, not a generator: it runs around
    every batch."""

    __slots__ = ("_paused", "_promotes")

    def __init__(self, size: int) -> None:
        self._paused = size >= MIN_BATCH and gc.isenabled()
        self._promotes = self._paused and size >= PROMOTE_BATCH

    def __enter__(self) -> None:
        if self._paused:
            gc.disable()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._paused:
            if exc_type is None and self._promotes:
                _promote_young_objects()
            gc.enable()
