"""Pausing the cyclic garbage collector around batch work (validating or dumping documents).

Building or dumping a batch of documents allocates several objects per document, none of them
in a reference cycle. With the collector on, CPython runs a young-generation collection every
few hundred allocations, and each one walks the fresh objects again: ~40 % of a large batch's
time. Pausing it for the batch is safe (nothing cyclic is made) and it runs normally after.
"""

from __future__ import annotations

import gc
from types import TracebackType

__all__ = ["MIN_BATCH", "paused_gc"]

#: Batches shorter than this are not worth pausing the collector for.
MIN_BATCH = 64


class paused_gc:
    """Pause the cyclic GC inside the block when ``size`` reaches :data:`MIN_BATCH` and the GC
    is on; leave it alone otherwise (also when an enclosing block already paused it, which
    then re-enables it). A class, not a generator: it runs around every batch."""

    __slots__ = ("_paused",)

    def __init__(self, size: int) -> None:
        self._paused = size >= MIN_BATCH and gc.isenabled()

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
            gc.enable()
