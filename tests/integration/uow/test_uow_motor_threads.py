"""Under Motor, a driver call runs in a thread, which a cancellation does not stop: a block cut
off while a thread still holds its first command (built with ``startTransaction``, not yet
sent) must leave no transaction open on the server once that command went out.

A command listener holds the command in Motor's thread (its ``started`` event comes after the
command is built, before it is sent) while the test cancels the block, or times out the call
inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from pymongo import monitoring
from uow_support import open_transactions

import odm
from odm import executor
from odm.session import current_unit_of_work
from tests.motor_listening import bound_through_motor

pytestmark = pytest.mark.odm_drivers("motor")

#: Seconds the listener holds the command in the thread.
HOLD = 0.4


class MtOrder(odm.Document):
    ref: str
    status: str = "new"

    class Meta:
        collection = "mt_orders"


class HoldFirstCommand(monitoring.CommandListener):
    """Holds, in the driver's thread, the next command that would start a transaction."""

    def __init__(self) -> None:
        self.armed = threading.Event()
        self.held: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.armed.is_set() and event.command.get("startTransaction"):
            self.armed.clear()
            self.held.append(event.command_name)
            time.sleep(HOLD)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def held(odm_uri: str) -> AsyncIterator[HoldFirstCommand]:
    """A fresh database bound to the default alias through a Motor client whose first command
    of a transaction can be held in its thread."""
    listener = HoldFirstCommand()
    async with bound_through_motor(odm_uri, listener):
        yield listener


async def stored_statuses() -> list[str]:
    raw = await executor.collection(MtOrder).find({}, sort=[("ref", 1)]).to_list(None)
    return [doc["status"] for doc in raw]


async def _get() -> None:
    await MtOrder.objects.get(ref="a")


async def _iterate() -> None:
    async for _ in MtOrder.objects.filter(ref="a"):
        pass


async def _count() -> None:
    await MtOrder.objects.count()


async def _insert() -> None:
    await MtOrder(ref="b", status="inserted").insert()


async def _update() -> None:
    await MtOrder.objects.filter(ref="a").update(status="updated")


async def _delete() -> None:
    await MtOrder.objects.filter(ref="a").delete()


async def _flush() -> None:
    order = await MtOrder.objects.get(ref="a")
    order.status = "flushed"
    uow = current_unit_of_work()
    assert uow is not None
    await uow.flush()


FIRST_OPERATIONS: dict[str, Callable[[], Awaitable[None]]] = {
    "get": _get,
    "iterate": _iterate,
    "count": _count,
    "insert": _insert,
    "update": _update,
    "delete": _delete,
    "flush": _flush,
}


@pytest.mark.parametrize("first", sorted(FIRST_OPERATIONS))
async def test_a_cancel_while_the_thread_holds_the_first_command_leaves_no_transaction(
    held: HoldFirstCommand, first: str
) -> None:
    await MtOrder(ref="a").insert()
    operation = FIRST_OPERATIONS[first]

    async def body() -> None:
        async with odm.transaction():
            await operation()
            await MtOrder.objects.filter(ref="a").update(status="second")

    held.armed.set()
    task = asyncio.create_task(body())
    await asyncio.sleep(HOLD / 4)
    assert held.held, "the first command was not held"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The block ended only after the held command went out: nothing is left to reopen it.
    assert await open_transactions(odm.get_database()) == []
    await asyncio.sleep(HOLD)
    assert await open_transactions(odm.get_database()) == []
    assert await stored_statuses() == ["new"]


async def test_a_call_timed_out_and_caught_in_the_block_is_rolled_back_after_its_thread(
    held: HoldFirstCommand,
) -> None:
    """The block goes on after its first call was cut off: it cannot commit (the call may have
    run), and its abort waits for that call's thread, so no transaction is reopened."""
    await MtOrder(ref="a").insert()
    held.armed.set()
    with pytest.raises(odm.TransactionError, match="MtOrder update_many was cut off"):
        async with odm.transaction():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HOLD / 4):
                    await MtOrder.objects.filter(ref="a").update(status="cut off")
    assert held.held == ["update"]
    assert await open_transactions(odm.get_database()) == []
    await asyncio.sleep(HOLD)
    assert await open_transactions(odm.get_database()) == []
    assert await stored_statuses() == ["new"]
