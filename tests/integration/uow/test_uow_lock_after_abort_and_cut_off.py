"""The optimistic lock's version after a block ends badly, and what a copy learns of a delete.

- A version set by hand inside a block (``obj.version = 99``, a client's copied on with a
  request body) after the block wrote the object is the user's, as the other fields the block
  changed are: an abort keeps it (it used to put back the version from before the block,
  silently, so that the next ``save()`` passed the lock's check with the hand-set version
  ignored), and the next ``save()`` raises ``StaleDocument`` as it does outside a block. The
  version the aborted writes bumped in memory still goes back.
- A ``save()`` cut off outside a block whose write ran is learnt by the next ``save()`` of the
  object, inside a block too, and the object the block holds for that id learns it: the
  block's flush is not refused as stale.
- A copy (``model_copy()``) of a document deleted through another copy is not told of the
  delete; its ``save()`` with changes raises (``DoesNotExist``, or ``StaleDocument`` under
  the lock) and re-creates nothing; one with no change sends nothing, as Django's
  ``save(update_fields=[])`` does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo.errors import ConnectionFailure
from uow_support import close_connection_at_next, fail_point, stored

import odm
from odm.contrib.pytest.queries import capture_queries
from odm.models.tracking import Unsure, get_snapshot

pytestmark = pytest.mark.odm_drivers("pymongo")  # the rules are odm's, not the driver's

HAND_SET = 99


class UwLockedItem(odm.Document):
    n: int = 0

    class Meta:
        collection = "uw_locked_items"
        optimistic_lock = True


class UwPlainItem(odm.Document):
    n: int = 0

    class Meta:
        collection = "uw_plain_items"


class UwEntry(odm.Document):
    amount: int = 0

    class Meta:
        collection = "uw_entries"


class Abort(Exception):
    """The block's own failure."""


async def stored_locked_item() -> tuple[UwLockedItem, dict[str, Any]]:
    """A locked item inserted, and what the database holds of it."""
    original = await UwLockedItem().insert()
    raw = await stored(original)
    assert raw is not None
    return original, raw


async def refused_and_unwritten(document: UwLockedItem, raw: dict[str, Any]) -> None:
    """The next ``save()`` of ``document`` raises ``StaleDocument`` and the database still
    holds ``raw``."""
    with pytest.raises(odm.StaleDocument, match=f"its version is {HAND_SET}"):
        await document.save()
    assert await stored(document) == raw


# -- 2. a version set by hand in a block that aborts -------------------------------------


async def test_a_version_set_by_hand_after_a_save_in_an_aborted_block_stays(
    odm_database: Any,
) -> None:
    original, raw = await stored_locked_item()
    with pytest.raises(Abort):
        async with odm.transaction():
            held = await UwLockedItem.objects.get(id=original.id)
            held.n = 1
            await held.save()  # the block bumps the version in memory: 1
            held.version = HAND_SET
            raise Abort
    assert (held.n, held.version) == (1, HAND_SET)  # both the user's, kept
    assert get_snapshot(held) == raw
    await refused_and_unwritten(held, raw)


@pytest.mark.usefixtures("fail_points_off")
async def test_a_version_set_by_hand_stays_when_the_block_is_read_back(
    odm_database: Any,
) -> None:
    original, raw = await stored_locked_item()
    with pytest.raises(ConnectionFailure):  # the documents are read back from the server
        async with odm.transaction():
            held = await UwLockedItem.objects.get(id=original.id)
            held.n = 1
            await held.save()
            held.version = HAND_SET
            await close_connection_at_next(odm_database, "insert")
            await UwEntry().insert()
    assert (held.n, held.version) == (1, HAND_SET)
    assert get_snapshot(held) == raw
    await refused_and_unwritten(held, raw)


async def test_a_version_set_by_hand_in_a_block_that_wrote_nothing_stays(
    odm_database: Any,
) -> None:
    original, raw = await stored_locked_item()
    with pytest.raises(Abort):
        async with odm.transaction():
            held = await UwLockedItem.objects.get(id=original.id)
            held.n = 5
            held.version = HAND_SET
            raise Abort
    assert (held.n, held.version) == (5, HAND_SET)
    await refused_and_unwritten(held, raw)


async def test_the_version_an_aborted_save_bumped_goes_back(odm_database: Any) -> None:
    original = await UwLockedItem().insert()
    with pytest.raises(Abort):
        async with odm.transaction():
            held = await UwLockedItem.objects.get(id=original.id)
            held.n = 1
            await held.save()
            raise Abort
    assert (held.n, held.version) == (1, 0)
    await held.save()  # not stale: nobody else wrote
    assert await stored(held) == {"_id": held.id, "n": 1, "version": 1}


# -- 1. a save cut off outside a block whose write ran, then the block -------------------


@pytest.mark.usefixtures("fail_points_off")
async def test_a_cut_off_save_that_ran_is_learnt_in_a_block_and_by_the_held_object(
    odm_database: Any,
) -> None:
    document = await UwLockedItem().insert()
    document.n = 1
    await fail_point(odm_database, {
        "failCommands": ["update"], "blockConnection": True, "blockTimeMS": 60,
    })
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(document.save(), 0.015)
    assert isinstance(get_snapshot(document), Unsure)
    await asyncio.sleep(0.1)  # the held update has run
    assert (await stored(document) or {})["version"] == 1
    async with odm.transaction():
        held = await UwLockedItem.objects.get(id=document.id)
        document.n = 2
        await document.save()  # learns version 1, writes 2; the held object learns it
        held.n = 3  # the flush writes it on version 2
    assert await stored(document) == {"_id": document.id, "n": 3, "version": 3}
    assert (held.version, get_snapshot(held)) == (3, await stored(document))
    assert (document.version, get_snapshot(document)["version"]) == (2, 2)  # a copy of its time


# -- 3. a copy of a document deleted through another copy ----------------------------------


@pytest.mark.parametrize("model", [UwPlainItem, UwLockedItem])
async def test_a_copy_of_a_deleted_document_refuses_its_changes(
    odm_database: Any, model: type[odm.Document]
) -> None:
    original = await model().insert()
    copy = original.model_copy()
    await original.delete()
    copy.n = 3  # type: ignore[attr-defined]
    refusal = odm.StaleDocument if model._meta.optimistic_lock else model.DoesNotExist
    with pytest.raises(refusal, match="cannot save"):
        await copy.save()
    assert await stored(original) is None  # nothing re-created


async def test_a_copy_of_a_deleted_document_with_no_change_sends_nothing(
    odm_database: Any,
) -> None:
    original = await UwPlainItem().insert()
    copy = original.model_copy()
    await original.delete()
    with capture_queries() as queries:
        await copy.save()
    assert queries.names() == []
    assert await stored(original) is None
