"""Three gaps of the unit of work that session 19's attacker review left open, where an
object or a write silently disagreed with the database; each on both drivers:

- inside a block, the flush of a tracked document whose own changes its model refuses on
  top of what a copy of it saved (a validator across fields) wrote the document's stale
  values over the copy's save: the copy's change was lost without a word;
- a copy saved while a save of another copy of its document was of unknown outcome (cut off
  by a deadline) diffed against the state before the cut-off: an append that ran was pushed
  again, and a value that ran and was set back in the copy stayed;
- inside a block, deleting the document of a held id (through another object, a queryset
  ``delete()`` or the held object) and inserting that id again through another object left
  the held object saying it was not stored: its next ``save()`` was refused as a duplicate
  key.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pydantic import ValidationError, model_validator
from uow_support import fail_point, stored, truthful

import odm
from odm import transaction
from odm.session import current_unit_of_work


class GapRange(odm.Document):
    lo: int = 0
    hi: int = 10

    class Meta:
        collection = "gap_ranges"

    @model_validator(mode="after")
    def ordered(self) -> GapRange:
        """A validator across fields: ``lo`` never above ``hi``."""
        if self.lo > self.hi:
            raise ValueError("lo is above hi")
        return self


class GapItem(odm.Document):
    n: int = 0
    tags: list[str] = []

    class Meta:
        collection = "gap_items"


class GapLocked(odm.Document):
    n: int = 0
    tags: list[str] = []

    class Meta:
        collection = "gap_locked"
        optimistic_lock = True


class Abort(Exception):
    """The block's own failure."""


# -- 1. the flush cannot merge what a copy saved ---------------------------------------------


@pytest.mark.parametrize("where", ["flush", "commit"])
async def test_a_flush_that_cannot_merge_a_copys_save_raises_instead_of_undoing_it(
    odm_database: Any, where: str
) -> None:
    document = await GapRange().insert()
    with pytest.raises((ValidationError, odm.TransactionError)) as raised:
        async with transaction():
            held = await GapRange.objects.get(id=document.id)
            sibling = copy.copy(held)
            held.hi = 12  # its own change: 0 <= 12
            sibling.hi, sibling.lo = 20, 15
            await sibling.save()  # lo=15 with the held hi=12: no document holds both
            if where == "flush":
                uow = current_unit_of_work()
                assert uow is not None
                with pytest.raises(ValidationError) as refused:
                    await uow.flush()
                raise refused.value
    if where == "flush":  # the block cannot commit once the flush was refused
        assert isinstance(raised.value, ValidationError)
    error = raised.value
    notes = " ".join(getattr(error, "__notes__", ()))
    assert "GapRange" in notes and repr(document.id) in notes, notes
    assert "(hi)" in notes and "(hi, lo)" in notes, notes
    assert "rolled back" in notes, notes
    raw = await stored(document)
    assert raw is not None and (raw["lo"], raw["hi"]) == (0, 10)  # nothing half-written
    await truthful(held)
    await truthful(sibling)
    assert (held.lo, held.hi, sibling.lo, sibling.hi) == (0, 12, 15, 20)  # both intents kept


async def test_the_block_is_rollback_only_after_the_flush_refused_a_merge(
    odm_database: Any,
) -> None:
    document = await GapRange().insert()
    with pytest.raises(odm.TransactionError):
        async with transaction():
            held = await GapRange.objects.get(id=document.id)
            sibling = copy.copy(held)
            held.hi = 12
            sibling.hi, sibling.lo = 20, 15
            await sibling.save()
            with pytest.raises(ValidationError):
                await GapRange.objects.filter(lo=99).update(hi=1)  # autoflushes first
            held.hi = 30  # mended: still not committed
    raw = await stored(document)
    assert raw is not None and (raw["lo"], raw["hi"]) == (0, 10)


# -- 2. a copy saved while its family's save is of unknown outcome ----------------------------


async def _cut_off_save(database: Any, document: Any) -> None:
    """Save ``document`` with its update held on the server past the deadline, which cuts it
    off; return once the server ran it."""
    hold = {"failCommands": ["update"], "blockConnection": True, "blockTimeMS": 150}
    # Armed from an empty context: nothing of the test's may send it in a session.
    await asyncio.create_task(fail_point(database, hold), context=contextvars.Context())
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.03):
            await document.save()
    async with asyncio.timeout(5):  # until the server ran the held update
        while ((await stored(document)) or {}).get("n") != 1:
            await asyncio.sleep(0.02)


async def test_a_copy_saved_after_a_cut_off_append_does_not_push_it_again(
    odm_database: Any, fail_points_off: None
) -> None:
    document = await GapItem().insert()
    document.n = 1
    sibling = copy.copy(document)  # shares the tags list: it holds the append too
    document.tags.append("x")
    await _cut_off_save(odm_database, document)
    await sibling.save()  # reads first: the append and n=1 are stored already
    raw = await stored(document)
    assert raw is not None and raw["tags"] == ["x"]
    await truthful(sibling, fields=True)
    await document.save()  # the one cut off: reads too, and sends nothing more
    assert await stored(document) == raw
    await truthful(document, fields=True)


async def test_a_copy_that_set_back_a_value_a_cut_off_save_wrote_writes_it_back(
    odm_database: Any, fail_points_off: None
) -> None:
    document = await GapItem().insert()
    document.n = 1
    sibling = copy.deepcopy(document)  # n=1, not saved yet
    await _cut_off_save(odm_database, document)
    sibling.n = 0  # set back: the user wants 0 stored
    await sibling.save()
    raw = await stored(document)
    assert raw is not None and raw["n"] == 0
    await truthful(sibling, fields=True)


@pytest.mark.odm_drivers("pymongo")  # the lock's filter, not the driver, decides
async def test_a_locked_copy_saved_after_a_cut_off_save_that_ran_is_stale(
    odm_database: Any, fail_points_off: None
) -> None:
    document = await GapLocked().insert()
    sibling = copy.deepcopy(document)
    document.n = 1
    await _cut_off_save(odm_database, document)
    sibling.tags.append("y")
    with pytest.raises(odm.StaleDocument):
        await sibling.save()  # its version is the one the cut-off save replaced
    raw = await stored(document)
    assert raw is not None and (raw["n"], raw["tags"]) == (1, [])


# -- 3. a held id deleted and inserted again through other objects ---------------------------


async def _through_itself(held: Any) -> Any:
    await held.delete()
    return GapItem(id=held.id)


async def _through_a_copy(held: Any) -> Any:
    other = copy.copy(held)
    await other.delete()
    return other


async def _through_an_object_loaded_before(held: Any, before: Any) -> Any:
    await before.delete()
    return before


async def _through_a_queryset(held: Any) -> Any:
    assert await GapItem.objects.filter(id=held.id).delete() == 1
    return GapItem(id=held.id)


DELETES: dict[str, Callable[..., Awaitable[Any]]] = {
    "copy": _through_a_copy,
    "loaded_before": _through_an_object_loaded_before,
    "queryset": _through_a_queryset,
    "itself": _through_itself,
}


async def _delete_then_insert(held: Any, before: Any, how: str, insert: str) -> Any:
    """Delete ``held``'s document as ``how`` says, then insert its id again with n=5 through
    another object (``insert()`` or ``bulk_create()``); return that object."""
    delete = DELETES[how]
    other = await (delete(held, before) if how == "loaded_before" else delete(held))
    assert not held.is_stored  # the held object is told its document is gone
    other.n = 5
    if insert == "insert":
        await other.insert()
    else:
        await GapItem.objects.bulk_create([other])
    return other


@pytest.mark.parametrize(
    ("how", "insert"), [*((how, "insert") for how in sorted(DELETES)), ("copy", "bulk_create")]
)
async def test_a_held_object_learns_its_id_inserted_again_by_another_object(
    odm_database: Any, how: str, insert: str
) -> None:
    document = await GapItem(n=1).insert()
    before = await GapItem.objects.get(id=document.id)
    async with transaction():
        held = await GapItem.objects.get(id=document.id)
        other = await _delete_then_insert(held, before, how, insert)
        assert held.is_stored and held.n == 5  # what the insert stored
        assert await GapItem.objects.get(id=document.id) is other  # the inserted object
    await truthful(held, fields=True)
    held.tags.append("t")
    await held.save()  # an update, no DuplicateKey
    raw = await stored(document)
    assert raw is not None and (raw["n"], raw["tags"]) == (5, ["t"])


async def test_a_held_object_keeps_its_own_changes_on_top_of_the_insert(
    odm_database: Any,
) -> None:
    document = await GapItem(n=1).insert()
    before = await GapItem.objects.get(id=document.id)
    async with transaction():
        held = await GapItem.objects.get(id=document.id)
        held.tags.append("mine")  # its own change, never written
        await _delete_then_insert(held, before, "loaded_before", "insert")
        assert (held.n, held.tags) == (5, ["mine"])
    raw = await stored(document)
    assert raw is not None and (raw["n"], raw["tags"]) == (5, [])  # a copy of its time
    await held.save()  # sends only its own change
    raw = await stored(document)
    assert raw is not None and (raw["n"], raw["tags"]) == (5, ["mine"])


async def test_an_aborted_delete_and_insert_leaves_the_held_object_as_it_was(
    odm_database: Any,
) -> None:
    document = await GapItem(n=1).insert()
    with pytest.raises(Abort):
        async with transaction():
            held = await GapItem.objects.get(id=document.id)
            await _delete_then_insert(held, None, "copy", "insert")
            raise Abort
    await truthful(held, fields=True)
    assert held.n == 1


async def test_a_held_object_whose_changes_its_model_refuses_on_top_of_the_insert(
    odm_database: Any,
) -> None:
    document = await GapRange().insert()
    before = await GapRange.objects.get(id=document.id)
    with pytest.raises(odm.TransactionError):
        async with transaction():
            held = await GapRange.objects.get(id=document.id)
            held.hi = 12  # its own change
            await before.delete()
            before.hi, before.lo = 20, 15
            with pytest.raises(ValidationError) as refused:
                await before.insert()  # lo=15 with the held hi=12: refused by the model
            notes = " ".join(refused.value.__notes__)
            assert "GapRange" in notes and repr(document.id) in notes, notes
    raw = await stored(document)
    assert raw is not None and (raw["lo"], raw["hi"]) == (0, 10)
    await truthful(held)
    assert (held.lo, held.hi) == (0, 12)
