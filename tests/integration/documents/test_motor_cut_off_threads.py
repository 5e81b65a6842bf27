"""Under Motor, a write of a document cut off outside a transaction may still be in the driver's
thread, built but not yet sent: a cancellation stops the caller, not the thread. The document
says it does not know what is stored (:mod:`odm.outcomes`), and its next ``save()`` or
``refresh()`` reads the stored document; a read made while its own write still waits in the
thread learns a state that write then changes: a ``$push`` learnt as not run was pushed again
(the object said ``['c']``, the database held ``['c', 'c']``), and under the optimistic lock
the object's next save was refused as stale by its own write.

A command listener holds the ``update`` in Motor's thread (its ``started`` event comes after
the command is built, before it is sent) past the caller's deadline.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import monitoring

import odm
from odm import executor
from odm.models.tracking import Unsure, get_snapshot
from tests.motor_listening import bound_through_motor

pytestmark = pytest.mark.odm_drivers("motor")

#: Seconds the listener holds the update in the thread, and the caller's deadline.
HOLD = 0.3
CUT_AFTER = 0.02


class MctPlain(odm.Document):
    tags: list[str] = []
    n: int = 0

    class Meta:
        collection = "mct_plain"


class MctLocked(odm.Document):
    tags: list[str] = []
    n: int = 0

    class Meta:
        collection = "mct_locked"
        optimistic_lock = True


class HoldUpdate(monitoring.CommandListener):
    """Holds, in the driver's thread, the next ``update`` once armed."""

    def __init__(self) -> None:
        self.armed = threading.Event()
        self.sent = threading.Event()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.armed.is_set() and event.command_name == "update":
            self.armed.clear()
            time.sleep(HOLD)
            self.sent.set()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def held(odm_uri: str) -> AsyncIterator[HoldUpdate]:
    """A fresh database bound to the default alias through a Motor client whose next
    ``update`` can be held in its thread."""
    listener = HoldUpdate()
    async with bound_through_motor(odm_uri, listener):
        yield listener


async def cut_off_push(held: HoldUpdate, document: Any) -> None:
    """Append to ``document`` and save it, cut off while its update waits in the thread."""
    document.tags.append("c")
    held.armed.set()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(CUT_AFTER):
            await document.save()
    assert isinstance(get_snapshot(document), Unsure)
    assert not held.sent.is_set(), "the update left the thread before the deadline"


async def stored(document: Any) -> dict[str, Any]:
    # Once the thread is surely done: whatever it sent has run.
    await asyncio.sleep(HOLD)
    raw = await executor.collection(type(document)).find_one({"_id": document.id})
    assert raw is not None
    return raw


@pytest.mark.parametrize("model", [MctPlain, MctLocked])
async def test_the_next_save_learns_the_write_still_in_the_thread(
    held: HoldUpdate, model: type[Any]
) -> None:
    document = await model(tags=["a"]).insert()
    await cut_off_push(held, document)

    await document.save()  # learns what is stored: after the held $push, not before it

    raw = await stored(document)
    assert raw["tags"] == ["a", "c"]
    assert document.tags == ["a", "c"]
    assert get_snapshot(document) == raw
    assert document.to_bson() == raw
    document.n += 1
    await document.save()  # not refused as stale by its own write, nor pushing again
    assert await stored(document) == document.to_bson()


async def test_a_refresh_reads_what_the_write_in_the_thread_left(held: HoldUpdate) -> None:
    document = await MctPlain(tags=["a"]).insert()
    await cut_off_push(held, document)

    await document.refresh()

    raw = await stored(document)
    assert document.tags == raw["tags"] == ["a", "c"]
    assert get_snapshot(document) == raw
    await document.save()
    assert await stored(document) == document.to_bson()
