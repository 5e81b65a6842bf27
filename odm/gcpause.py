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
collector, so there batches end with the plain re-enable; so do those of the free-threaded
build and of CPython 3.14 and later, where freezing is not known to be two list splices.

CPython 3.12 starts with a few hundred objects of its own frozen (375 tuples on 3.12.1: the
constants of its deep-frozen modules, statically allocated and immortal), and its full
collections put them back there. They are not the program's: the count found frozen when
this module is imported on 3.12 is taken as the interpreter's (when it is that small,
:data:`INTERPRETER_FROZEN_LIMIT`; a program's ``gc.freeze()`` freezes its whole heap, tens of
thousands of objects), and a promotion takes them to the oldest generation with the batch
until the next full collection returns them. An immortal object is never freed by a
collection, so nothing changes for them but where they wait. Without this, 3.12 would walk
every long batch again in its young collections (10,000 documents loaded: odm 7-10 % slower,
measured, and the same for plain pydantic models paused the same way).
"""

from __future__ import annotations

import gc
import os
import sys
import sysconfig
from types import TracebackType

__all__ = [
    "INTERPRETER_FROZEN_LIMIT",
    "MIN_BATCH",
    "PROMOTE_BATCH",
    "PROMOTION_AVAILABLE",
    "paused_gc",
    "promotes_batches",
]

#: Batches shorter than this are not worth pausing the collector for.
MIN_BATCH = 64
#: Batches this long or longer end with their objects promoted to the oldest generation.
PROMOTE_BATCH = 1000

#: Whether long batches are promoted on this Python: freezing is two list splices on CPython
#: 3.11 to 3.13's default build, whatever the heap's size; the free-threaded
#: build marks every object of the heap instead, and 3.14's incremental collector may walk an
#: old space, so there batches end with the plain re-enable.
PROMOTION_AVAILABLE = sys.version_info < (3, 14) and not sysconfig.get_config_var("Py_GIL_DISABLED")

#: The most objects CPython 3.12 is taken to keep frozen of its own at start-up (it keeps a
#: few hundred); more found frozen when this module is imported are the program's.
INTERPRETER_FROZEN_LIMIT = 1000


def _interpreter_frozen() -> int:
    """How many of the objects frozen now are CPython 3.12's own (see the module's doc)."""
    if sys.version_info[:2] != (3, 12):
        return 0
    count = gc.get_freeze_count()
    return count if count <= INTERPRETER_FROZEN_LIMIT else 0


# How many frozen objects are the interpreter's own (CPython 3.12; 0 elsewhere).
_interpreter_owned = _interpreter_frozen()
# The pid of a process found keeping frozen objects of its own.
_freezer: int | None = None


def _process_freezes() -> bool:
    """Tell whether this process keeps objects frozen with ``gc.freeze()`` (more than CPython
    3.12's own). Asked again at each batch while nothing of the program's is frozen
    (``gc.get_freeze_count()`` walks the frozen objects: a few hundred at most, then); once
    some are, the answer is kept for the process (a forked child asks again)."""
    global _freezer
    pid = os.getpid()
    if _freezer == pid:
        return True
    if gc.get_freeze_count() > _interpreter_owned:
        _freezer = pid
        return True
    return False


def promotes_batches() -> bool:
    """Tell whether long batches end with their objects promoted in this process (this
    Python allows it and nothing of the process is frozen)."""
    return PROMOTION_AVAILABLE and not _process_freezes()


def _promote_young_objects() -> None:
    """Move every object of the young generations to the oldest one without walking them
    (on CPython 3.12, the interpreter's own frozen objects with them)."""
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
