"""Streaming: `async for` over many documents keeps memory flat; `await qs` holds them all.

25,000 documents by default, 100,000 with ``--odm-long``: the stream's peak is one batch
whatever the count, and the list's is several times it from a few thousand documents on, so
the smaller count tells the two apart as surely (``bench`` measures growth up to 100,000).
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from typing import Any

import pytest

from odm import Document

#: The documents streamed, by default and with ``--odm-long``.
N = 25_000
N_LONG = 100_000
MB = 1024 * 1024


class QsTiny(Document):
    n: int
    label: str

    class Meta:
        collection = "qs_tiny"


@pytest.mark.odm_drivers("pymongo")
async def test_async_for_streams_with_flat_memory(odm_database: Any, odm_long: bool) -> None:
    started = time.monotonic()
    count = N_LONG if odm_long else N
    raws = [{"n": i, "label": "x" * 16} for i in range(count)]
    await odm_database.qs_tiny.insert_many(raws, ordered=False)
    del raws
    qs = QsTiny.objects.order_by().batch_size(1000)
    gc.collect()
    tracemalloc.start()
    try:
        seen = 0
        total = 0
        async for doc in qs:
            seen += 1
            total += doc.n
        _, stream_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        baseline, _ = tracemalloc.get_traced_memory()
        rows = await qs
        _, list_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == count and len(rows) == count and total == count * (count - 1) // 2
    del rows
    # One batch of 1000 small documents at a time: a few MB at most, whatever the count is;
    # the list holds all the documents (and their snapshots) at once.
    assert stream_peak < 20 * MB, stream_peak / MB
    assert list_peak - baseline > 5 * stream_peak, (list_peak / MB, stream_peak / MB)
    assert time.monotonic() - started < 60
