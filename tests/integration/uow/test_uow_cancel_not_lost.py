"""A cancellation that arrives as a driver call with a time limit finishes is not lost.

Python 3.11's ``asyncio.wait_for`` returns what it waited for when its caller is cancelled
just as that finishes (gh-86296, fixed in 3.12), and PyMongo sends each command through it
when the call has a time limit (odm's ``timeout()``, ``pymongo.timeout()``, a client's
``timeoutMS``). The caller then ran on as if never cancelled: a cancelled request went on to
its next write, a cancelled block on to its commit. The cancellation is made here at every
turn of the event loop after the command is sent (``hops``), from a command listener, which
PyMongo calls in the caller's own loop just before sending: whenever ``Task.cancel()`` says it
was requested, the call must end in ``CancelledError``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo import monitoring

import odm
from odm import F
from odm.contrib.pytest import queries

pytestmark = pytest.mark.odm_drivers("pymongo")  # Motor's calls run in threads of their own

#: Turns of the event loop tried between the command's send and the cancellation: the window
#: of 3.11's ``wait_for`` is a few turns after it.
HOPS = range(8)


class Counter(odm.Document):
    """One counter, raised by the cancelled updates, and a list the cancelled saves append to."""

    n: int = 0
    items: list[int] = []


class CancelAfterHops(monitoring.CommandListener):
    """Cancels ``task`` ``hops`` turns of its event loop after it sends ``command``."""

    def __init__(self) -> None:
        self.armed: tuple[asyncio.Task[Any], int, str] | None = None
        self.requested: bool | None = None

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.armed is None or event.command_name != self.armed[2]:
            return
        task, hops, _ = self.armed
        self.armed = None
        loop = task.get_loop()

        def hop(left: int) -> None:
            if left:
                loop.call_soon(hop, left - 1)
            else:
                self.requested = task.cancel()

        loop.call_soon(hop, hops)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Not watched."""

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Not watched."""


async def cancelled_at_each_turn(
    work: Any, command: str, settle: Any = None
) -> list[int]:
    """Run ``work()`` once per hop count, cancelled that many turns after ``command`` is sent
    (then ``await settle()``, if given); return the hop counts at which a requested
    cancellation was lost (the call returned)."""
    canceller = CancelAfterHops()
    lost = []
    with queries.listening(canceller):
        for hops in HOPS:
            task = asyncio.create_task(work())
            canceller.armed, canceller.requested = (task, hops, command), None
            try:
                await task
            except asyncio.CancelledError:
                pass
            else:
                if canceller.requested:
                    lost.append(hops)
            if settle is not None:
                await settle()
    return lost


async def test_a_cancelled_update_with_a_time_limit_is_not_lost(odm_database: Any) -> None:
    counter = Counter()
    await counter.save()
    query = Counter.objects.filter(id=counter.id).timeout(5)
    lost = await cancelled_at_each_turn(lambda: query.update(n=F("n") + 1), "update")
    assert lost == []
    stored = await Counter.objects.get(id=counter.id)
    assert 0 <= stored.n <= len(HOPS)


async def test_a_cancelled_read_under_a_deadline_is_not_lost(odm_database: Any) -> None:
    counter = Counter()
    await counter.save()

    async def read() -> Any:
        import pymongo

        with pymongo.timeout(5):
            return await Counter.objects.get(id=counter.id)

    assert await cancelled_at_each_turn(read, "find") == []


async def test_a_cancelled_save_in_a_block_with_a_deadline_is_not_lost(
    odm_database: Any,
) -> None:
    counter = Counter()
    await counter.save()

    async def saved_in_a_block() -> None:
        import pymongo

        with pymongo.timeout(5):
            async with odm.transaction():
                held = await Counter.objects.get(id=counter.id)
                held.n += 1
                await held.save()

    assert await cancelled_at_each_turn(saved_in_a_block, "update") == []


async def test_a_cancelled_save_under_a_deadline_learns_its_outcome(odm_database: Any) -> None:
    counter = Counter()
    await counter.save()
    appended = iter(range(100))

    async def append_and_save() -> None:
        import pymongo

        counter.items.append(next(appended))
        with pymongo.timeout(5):
            await counter.save()

    async def none_running() -> None:
        # A write cut off on its way may still be running on the server, and what a document
        # learns of it is read after (docs/documents.md, "A write cut off"): wait for it here.
        while [op async for op in await odm.get_client().admin.aggregate([
            {"$currentOp": {}}, {"$match": {"ns": {"$regex": f"^{odm_database.name}\\."}}},
        ])]:
            await asyncio.sleep(0.01)

    assert await cancelled_at_each_turn(append_and_save, "update", none_running) == []
    await counter.save()  # what the cut-off saves did not write, and nothing twice
    stored = await Counter.objects.get(id=counter.id)
    assert stored.items == counter.items == list(range(len(HOPS)))
