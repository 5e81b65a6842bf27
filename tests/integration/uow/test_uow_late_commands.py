"""A command of a block that a cancellation cut off may reach the server after the block was
aborted: its bytes were still on their way (or unread in the socket the driver closed), so it
was no operation on the server yet that the abort or ``killSessions`` could end. Seen in CI:
the first command of a cancelled block, with ``startTransaction``, opened a transaction ~10 ms
after the block had been aborted, which held its locks until the server's lifetime limit.

Here a TCP proxy (:class:`tests.late_delivery.LateDelivery`) holds back each command of a block in
turn, the block is cancelled while waiting for its answer, and the command is delivered once
the block has ended: the server must refuse it (no transaction opened or continued, nothing
written), and every object still tells the truth.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient
from uow_support import open_transactions, stored, truthful

import odm
from tests.late_delivery import LateDelivery

ALIAS = "late"


class LateOrder(odm.Document):
    ref: str
    tags: list[str] = []

    class Meta:
        collection = "late_orders"
        alias = ALIAS


class LatePayment(odm.Document):
    ref: str

    class Meta:
        collection = "late_payments"
        alias = ALIAS


@pytest_asyncio.fixture
async def late(odm_database_uri: str) -> AsyncIterator[tuple[LateDelivery, Any]]:
    """The proxy, in front of the primary, that odm's ``late`` alias connects through; and the
    test's database seen directly (not through the proxy)."""
    name = urlsplit(odm_database_uri).path.strip("/")
    direct: AsyncMongoClient[Any] = AsyncMongoClient(odm_database_uri)
    host, port = (await direct.admin.command("hello"))["primary"].rsplit(":", 1)
    proxy = LateDelivery(host, int(port))
    proxy_port = await proxy.start()
    await odm.connect(
        f"mongodb://127.0.0.1:{proxy_port}/{name}?directConnection=true",
        alias=ALIAS, driver="pymongo",
    )
    try:
        yield proxy, direct[name]
    finally:
        await odm.disconnect(ALIAS)
        await proxy.close()
        await direct.close()


#: The commands the block below sends in its transaction, in order (each carries
#: ``autocommit: false``, which the proxy looks for).
BLOCK_COMMANDS = ["find", "update", "insert", "commitTransaction"]


@pytest.mark.parametrize("nth", range(len(BLOCK_COMMANDS)), ids=BLOCK_COMMANDS)
async def test_a_cut_off_command_delivered_after_the_abort_opens_and_writes_nothing(
    late: tuple[LateDelivery, Any], nth: int
) -> None:
    proxy, db = late
    order = await LateOrder(ref="late").insert()

    async def block() -> None:
        async with odm.transaction(ALIAS):
            await LateOrder.objects.get(ref="late")
            order.tags.append("cut")
            await order.save()
            await LatePayment(ref="p").insert()

    proxy.hold(b"autocommit", nth)
    task = asyncio.create_task(block())
    await asyncio.wait_for(proxy.held.wait(), 10)
    task.cancel()
    (outcome,) = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(outcome, asyncio.CancelledError), outcome

    assert await proxy.deliver(), "the server did not answer the late command"
    # The server refused it: no transaction stays open, nothing of the block was written.
    assert await open_transactions(db) == []
    assert await db.late_payments.count_documents({}) == 0
    assert (await db.late_orders.find_one({"_id": order.id}))["tags"] == []
    await truthful(order)
    assert (await stored(order)) == order.to_bson() | {"tags": []}
