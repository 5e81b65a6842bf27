"""A version set by hand after a cut-off write is refused as it is without one.

Under ``Meta.optimistic_lock`` a ``save()`` or ``delete()`` of an object whose version is not
the one it was loaded with raises ``StaleDocument`` before anything is sent. After a write
cut off (``asyncio.timeout``) the next ``save()`` / ``delete()`` first learns what is stored
(:func:`odm.outcomes.learn_outcome`): that must not overwrite a version the user set since
with the stored one, which would let the write through with the hand-set version ignored.

The server holds the ``update`` (``failCommand`` with ``blockConnection``) past the caller's
deadline, then runs it ("ran") or refuses it ("refused"); the test waits until it is done.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import odm
from odm import executor
from odm.contrib.pytest.queries import capture_queries
from odm.models.tracking import Unsure, get_snapshot

BLOCK_MS = 60
GIVE_UP = 0.015
OUTCOMES = ["ran", "refused"]
HAND_SET = 55

pytestmark = pytest.mark.odm_drivers("pymongo")  # the checks are odm's, not the driver's

Hold = Callable[[str, bool, int], Awaitable[None]]


class Out21Invoice(odm.Document):
    number: str = "a"
    total: int = 0

    class Meta:
        collection = "out21_invoices"
        optimistic_lock = True


async def stored(document: odm.Document) -> dict[str, Any] | None:
    raw: dict[str, Any] | None = await executor.collection(type(document)).find_one(
        {"_id": document.id}
    )
    return raw


async def cut_off_save(hold: Hold, document: Out21Invoice, outcome: str) -> dict[str, Any]:
    """Change ``document``, save it so that the call is cut off with ``outcome``, wait until
    the server is done with the held write, and return what is stored then."""
    document.total += 1
    await hold("update", outcome == "ran", BLOCK_MS)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(GIVE_UP):
            await document.save()
    assert isinstance(get_snapshot(document), Unsure)
    await asyncio.sleep(BLOCK_MS / 1000 + 0.03)
    raw = await stored(document)
    assert raw is not None
    assert raw["version"] == (1 if outcome == "ran" else 0)
    return raw


async def agrees(document: Out21Invoice, raw: dict[str, Any]) -> None:
    """The refused write sent nothing: the database holds ``raw`` still, the object knows it
    (its snapshot, not an unsure one), its hand-set version is kept (the user's, as any field
    changed since), and a ``refresh()`` makes it the stored document again."""
    assert await stored(document) == raw
    assert get_snapshot(document) == raw
    assert not isinstance(get_snapshot(document), Unsure)
    assert document.version == HAND_SET
    await document.refresh()
    assert document.to_bson() == raw


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("call", ["save", "delete"])
async def test_a_version_set_by_hand_after_a_cut_off_save_is_refused(
    hold: Hold, outcome: str, call: str
) -> None:
    doc = await Out21Invoice().insert()
    raw = await cut_off_save(hold, doc, outcome)
    doc.version = HAND_SET
    doc.number = "mine"
    with capture_queries() as sent, pytest.raises(odm.StaleDocument, match="version"):
        await getattr(doc, call)()
    assert sent.names() == ["find"]  # the look, no write
    await agrees(doc, raw)


async def test_the_version_the_cut_off_save_reached_is_learnt_when_left_alone(
    hold: Hold,
) -> None:
    doc = await Out21Invoice().insert()
    await cut_off_save(hold, doc, "ran")
    doc.number = "mine"
    await doc.save()
    raw = await stored(doc)
    assert raw is not None and (raw["version"], raw["number"]) == (2, "mine")
    assert doc.to_bson() == raw == get_snapshot(doc)


async def test_a_save_in_a_block_after_a_cut_off_save_refuses_a_hand_set_version(
    hold: Hold,
) -> None:
    doc = await Out21Invoice().insert()
    raw = await cut_off_save(hold, doc, "ran")
    doc.version = HAND_SET
    with pytest.raises(odm.StaleDocument):
        async with odm.transaction():
            await doc.save()
    assert await stored(doc) == raw
    # The abort put back what the object knew before the block: it does not know yet, and
    # its next save outside looks again, and refuses again.
    assert isinstance(get_snapshot(doc), Unsure)
    assert doc.version == HAND_SET
    with pytest.raises(odm.StaleDocument):
        await doc.save()
    await agrees(doc, raw)


async def test_the_flush_of_a_block_refuses_a_hand_set_version_after_a_cut_off_save(
    hold: Hold,
) -> None:
    outside = contextvars.copy_context()  # no block there: the save's cut-off is not the block's
    doc = await Out21Invoice().insert()
    with pytest.raises(odm.StaleDocument):
        async with odm.transaction():
            held = await Out21Invoice.objects.get(id=doc.id)  # tracked: the flush writes it
            raw = await asyncio.create_task(cut_off_save(hold, held, "ran"), context=outside)
            held.version = HAND_SET
            held.number = "mine"
    assert await stored(held) == raw
    with pytest.raises(odm.StaleDocument):
        await held.save()
    await agrees(held, raw)
