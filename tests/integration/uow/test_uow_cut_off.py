"""A driver call cut off inside a transaction (a cancellation or a deadline) that the block
catches: the call may have run on the server or not, so the block can no longer commit.

The server holds the call (``failCommand`` with ``blockConnection``) past an ``asyncio.timeout``
or the call's own ``timeout=``; the block catches that and goes on. Committing would keep a
write its documents do not know of (a ``save()`` whose ``$push`` ran would push again at the
flush), so every later operation of the block, and its end, raise
:class:`odm.TransactionError` naming the call; the transaction is rolled back, every object
tells the truth, and the next ``save()`` outside writes exactly what differs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from uow_support import armed, open_transactions, stored, truthful

import odm
from odm.session import current_unit_of_work

#: Milliseconds the server holds the call; the caller gives up after a quarter of that.
BLOCK_MS = 200
GIVE_UP = BLOCK_MS / 4000


class CutOrder(odm.Document):
    ref: str
    n: int = 0
    tags: list[str] = []

    class Meta:
        collection = "cut_orders"


class CutLocked(odm.Document):
    ref: str
    tags: list[str] = []

    class Meta:
        collection = "cut_locked"
        optimistic_lock = True


async def hold_next(db: Any, command: str) -> None:
    """Make the server hold the next ``command`` for ``BLOCK_MS``. Armed from a task with an
    empty context: inside the block the driver would send it in the transaction."""
    data = {"failCommands": [command], "blockConnection": True, "blockTimeMS": BLOCK_MS}
    await armed(db, data)


async def cut_by_asyncio_timeout(call: Awaitable[Any]) -> None:
    async with asyncio.timeout(GIVE_UP):
        await call


# Each: (the command the server holds, the call made in the block on the loaded `order` and
# `locked`, what the error names).
Call = Callable[[Any, Any], Awaitable[Any]]


async def _push_and_save(order: Any, locked: Any) -> None:
    order.tags.append("x")
    await order.save()


async def _push_and_save_locked(order: Any, locked: Any) -> None:
    locked.tags.append("x")
    await locked.save()


async def _push_and_flush(order: Any, locked: Any) -> None:
    order.tags.append("x")
    uow = current_unit_of_work()
    assert uow is not None
    await uow.flush()


async def _increment(order: Any, locked: Any) -> None:
    await CutOrder.objects.filter(id=order.id).update(n=odm.F("n") + 1)


async def _insert(order: Any, locked: Any) -> None:
    await CutOrder(ref="inserted").insert()


async def _bulk_create(order: Any, locked: Any) -> None:
    await CutOrder.objects.bulk_create([CutOrder(ref="bulk1"), CutOrder(ref="bulk2")])


async def _delete(order: Any, locked: Any) -> None:
    await order.delete()


async def _read(order: Any, locked: Any) -> None:
    await CutOrder.objects.filter(ref="a").count()


CALLS: dict[str, tuple[str, Call, str]] = {
    "save": ("update", _push_and_save, "CutOrder update"),
    "save_locked": ("update", _push_and_save_locked, "CutLocked update"),
    "flush": ("update", _push_and_flush, "CutOrder bulk_write"),
    "update": ("update", _increment, "CutOrder update"),
    "insert": ("insert", _insert, "CutOrder insert"),
    "bulk_create": ("insert", _bulk_create, "CutOrder insert_many"),
    "delete": ("delete", _delete, "CutOrder delete"),
    "read": ("aggregate", _read, "CutOrder count"),
}


@pytest.mark.parametrize("how", ["asyncio_timeout", "call_timeout"])
@pytest.mark.parametrize("kind", sorted(CALLS))
async def test_a_call_cut_off_and_caught_in_the_block_rolls_it_back(
    odm_database: Any, fail_points_off: None, kind: str, how: str
) -> None:
    command, call, named = CALLS[kind]
    order = await CutOrder(ref="a").insert()
    locked = await CutLocked(ref="a").insert()
    caught: list[BaseException] = []

    with pytest.raises(odm.TransactionError, match=f"{named}\\w* was cut off") as raised:
        async with odm.transaction():
            loaded = await CutOrder.objects.get(id=order.id)
            loaded_locked = await CutLocked.objects.get(id=locked.id)
            await CutOrder.objects.filter(id=order.id).update(n=odm.F("n") + 10)  # a first write
            await hold_next(odm_database, command)
            try:
                if how == "asyncio_timeout":
                    await cut_by_asyncio_timeout(call(loaded, loaded_locked))
                else:
                    with odm.operation_timeout(GIVE_UP):
                        await call(loaded, loaded_locked)
            except (TimeoutError, odm.OperationTimeout) as error:
                caught.append(error)
            assert caught, "the call was not cut off"
            # The block goes on: its next operation is refused before it is sent.
            with pytest.raises(odm.TransactionError, match="was cut off"):
                await CutOrder.objects.filter(ref="a").exists()
    assert "retry the whole block" in str(raised.value)

    await asyncio.sleep(BLOCK_MS / 1000)  # past the held command
    assert await open_transactions(odm_database) == []
    # Nothing of the block is stored: not its first write, not the cut-off call.
    assert await CutOrder.objects.filter(ref="a").values_list("n", "tags") == [(0, [])]
    assert await CutOrder.objects.count() == 1
    assert (await stored(locked) or {})["tags"] == []
    for document in (order, locked, loaded, loaded_locked):
        await truthful(document)
    # The next save writes exactly what the object holds and the database does not.
    for document in (loaded, loaded_locked):
        await document.save()
        assert (await stored(document)) == document.to_bson()
        await truthful(document)


async def test_a_call_cut_off_in_an_inner_block_rolls_the_whole_transaction_back(
    odm_database: Any, fail_points_off: None
) -> None:
    order = await CutOrder(ref="a").insert()
    with pytest.raises(odm.TransactionError, match="CutOrder update was cut off"):
        async with odm.transaction():
            await CutOrder.objects.filter(id=order.id).update(n=odm.F("n") + 10)
            await hold_next(odm_database, "update")
            async with odm.transaction():  # nested: the same transaction
                order.tags.append("x")
                with contextlib.suppress(TimeoutError):
                    await cut_by_asyncio_timeout(order.save())
    await asyncio.sleep(BLOCK_MS / 1000)
    assert await open_transactions(odm_database) == []
    assert (await stored(order) or {})["n"] == 0
    await truthful(order)
