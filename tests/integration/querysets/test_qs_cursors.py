"""Leaving an ``async for`` over a queryset early closes its server cursor at once, without
the cyclic garbage collector (issue #19, item 8)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator
from contextlib import aclosing, contextmanager
from typing import Any

from qs_support import QsCustomer, QsOrder

from odm import QuerySet

LOOPS = 300


async def idle_cursors(database: Any, collection: str) -> int:
    """The cursors open on the server for ``collection`` of ``database`` (between batches)."""
    admin = database.client.admin
    pipeline = [
        {"$currentOp": {"idleCursors": True, "allUsers": True}},
        {"$match": {"type": "idleCursor", "ns": f"{database.name}.{collection}"}},
    ]
    reply = await admin.command({"aggregate": 1, "pipeline": pipeline, "cursor": {}})
    return len(reply["cursor"]["firstBatch"])


@contextmanager
def collector_off() -> Iterator[None]:
    """Nothing found in a reference cycle can be freed meanwhile: what closes, closes by
    reference counting."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def odm_generators() -> list[str]:
    """The async generators of odm alive now (a stream not finalized)."""
    return [
        obj.ag_code.co_qualname
        for obj in gc.get_objects()
        if type(obj).__name__ == "async_generator" and "/odm/" in obj.ag_code.co_filename
        # the plugin's fixtures (odm/contrib/pytest) are the test's, not a stream
        and "/odm/contrib/" not in obj.ag_code.co_filename
    ]


async def settle() -> None:
    """Let the event loop run the finalizers scheduled by the dropped iterators (a few turns:
    the last loop's ``killCursors`` is a round trip)."""
    for _ in range(5):
        await asyncio.sleep(0.01)


QUERIES: dict[str, Callable[[], QuerySet[Any]]] = {
    "find": lambda: QsCustomer.objects.order_by("name"),
    "find_batches": lambda: QsCustomer.objects.batch_size(5),
    "pipeline": lambda: QsOrder.objects.select_related("customer").batch_size(5),
    "values": lambda: QsCustomer.objects.values("name").batch_size(5),
}


async def test_breaking_out_of_async_for_closes_the_cursor(odm_database: Any) -> None:
    customers = [QsCustomer(email=f"c{i}@x.io", name=f"c{i:04}") for i in range(1100)]
    await QsCustomer.objects.bulk_create(customers)
    await QsOrder.objects.bulk_create([QsOrder(customer=c, total=1) for c in customers[:20]])
    with collector_off():
        for name, make in QUERIES.items():
            collection = "qs_orders" if name == "pipeline" else "qs_customers"
            for i in range(LOOPS // len(QUERIES)):
                async for doc in make():
                    if i % 2:
                        break
                    return_early = doc
                    break
            await settle()
            assert await idle_cursors(odm_database, collection) == 0, name
            assert odm_generators() == [], name
    del return_early


async def test_an_iterator_kept_around_is_closed_with_aclosing(odm_database: Any) -> None:
    await QsCustomer.objects.bulk_create(
        [QsCustomer(email=f"c{i}@x.io", name=f"c{i}") for i in range(30)]
    )
    with collector_off():
        async with aclosing(aiter(QsCustomer.objects.batch_size(5))) as stream:
            first = await anext(stream)
            assert await idle_cursors(odm_database, "qs_customers") == 1
        # Closed on leaving the block: no event-loop turn needed.
        assert await idle_cursors(odm_database, "qs_customers") == 0
    assert first.name
