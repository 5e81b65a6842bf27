"""A block's unit of work is freed as soon as the block ends, by reference counting alone.

A reference cycle through the unit of work (its journal held it, and it holds its journal)
left every block, with its session, identity map and journal, to the cyclic garbage collector,
whose collections then walk the heap: a transfer in ``odm.transaction()`` ran ~7 % more
instructions, and missed the cache half again as often as the floor, for it
(docs/performance-internals.md). The collector is switched off while each block runs here,
so a cycle keeps the unit of work alive after the block and the test fails.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import odm
from odm import F, server_transactions
from odm.uow import UnitOfWork


class CyAccount(odm.Document):
    owner: str
    balance: int = 0

    class Meta:
        collection = "cy_accounts"


class Boom(Exception):
    """Raised inside a block to abort it."""


#: How long a block's unit of work may stay alive after the block, held by no cycle: the
#: driver's calls made in the block (PyMongo's 500 ms poll of a cancelled read, the abort's
#: time limit) leave asyncio timers, cancelled when the reply came, each holding a copy of
#: the block's context until it is due. The abort's limit is lowered to 1 s here.
FREED_WITHIN = 2.5


@contextmanager
def collector_off() -> Iterator[None]:
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


async def block_left(body: Callable[[], Awaitable[Any]], *, abort: bool) -> Any:
    """Run ``body`` in a block (raising :class:`Boom` at its end when ``abort``); return a
    weak reference to the block's unit of work."""
    try:
        async with odm.transaction() as uow:
            held = weakref.ref(uow)
            await body()
            if abort:
                raise Boom
    except (Boom, odm.TransactionError):
        pass
    del uow
    return held


async def two_updates() -> None:
    ann, bob = await CyAccount.objects.order_by("owner")
    await CyAccount.objects.filter(id=ann.id).update(balance=F("balance") - 1)
    await CyAccount.objects.filter(id=bob.id).update(balance=F("balance") + 1)


async def load_change_save() -> None:
    ann = await CyAccount.objects.get(owner="ann")
    ann.balance += 5
    await ann.save()


async def insert_one() -> None:
    await CyAccount(owner="cat").insert()


async def an_inner_block_fails() -> None:
    """A save, then an inner block that fails: the whole block is rolled back (its end raises
    ``TransactionError`` when not aborted already)."""
    ann = await CyAccount.objects.get(owner="ann")
    ann.balance += 1
    await ann.save()
    try:
        async with odm.transaction():
            ann.balance += 100
            await ann.save()
            raise Boom
    except Boom:
        pass


#: Each body, and what the accounts hold after its block committed (an inner failure rolls
#: the whole block back).
BODIES: dict[str, tuple[Callable[[], Awaitable[Any]], dict[str, int]]] = {
    "two_updates": (two_updates, {"ann": 99, "bob": 101}),
    "load_change_save": (load_change_save, {"ann": 105, "bob": 100}),
    "insert": (insert_one, {"ann": 100, "bob": 100, "cat": 0}),
    "an_inner_block_fails": (an_inner_block_fails, {"ann": 100, "bob": 100}),
}


async def accounts(db: Any) -> dict[str, int]:
    return {d["owner"]: d["balance"] async for d in db.cy_accounts.find()}


async def test_every_block_s_unit_of_work_is_freed_without_the_collector(
    odm_database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_transactions, "ABORT_TIME_LIMIT", 1.0)
    held: dict[str, Any] = {}
    with collector_off():
        for name, (body, committed) in BODIES.items():
            for abort in (False, True):
                await odm_database.cy_accounts.delete_many({})
                await CyAccount.objects.bulk_create(
                    [CyAccount(owner="ann", balance=100), CyAccount(owner="bob", balance=100)]
                )
                held[f"{name}, {'aborted' if abort else 'left'}"] = await block_left(
                    body, abort=abort
                )
                # The blocks did what they say: these are the blocks meant.
                expected = {"ann": 100, "bob": 100} if abort else committed
                assert await accounts(odm_database) == expected, (name, abort)
        deadline = asyncio.get_running_loop().time() + FREED_WITHIN
        while any(ref() is not None for ref in held.values()):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
        alive = [case for case, ref in held.items() if ref() is not None]
    assert alive == [], f"units of work kept alive by a reference cycle: {alive}"


async def test_a_journal_does_not_keep_its_unit_of_work_alive() -> None:
    """The cycle itself: a unit of work holds its journal, which names it as its owner."""
    with collector_off():
        uow = UnitOfWork(session=None, alias="default")
        assert uow.journal.owner is uow
        held = weakref.ref(uow)
        del uow
        assert held() is None
