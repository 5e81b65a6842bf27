"""An attacker's review of a held object learning that its id, deleted in the block, was
inserted again through another object (``UnitOfWork.forget`` / ``inserted``):

- the id deleted again afterwards (through the inserted object, a queryset ``delete()``, a
  ``bulk_create`` then a delete): the held object, which learnt the first insert, went on
  saying it was stored, and did not learn a third insert;
- a polymorphic family: an object of one class learnt a document inserted as another class
  of the family, and its ``save()`` then stored its own class over it (``_cls`` rewritten,
  the subclass's fields orphaned);
- ``Meta.optimistic_lock``: a held object with changes of its own said it was stored at the
  version it was loaded with, which the insert stored again (ABA): its ``save()`` wrote its
  stale values over the inserted document instead of being refused.

Also pinned, as they hold: ``atomic`` re-running the block after a transient commit error,
an inner block failing, an insert cut off after the delete, and compound ids.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
from typing import Any

import pytest
from uow_support import fail_point, stored, truthful

import odm
from odm import transaction


class RvItem(odm.Document):
    n: int = 0
    tags: list[str] = []

    class Meta:
        collection = "uow_rv_items"


class RvLocked(odm.Document):
    n: int = 0
    tags: list[str] = []

    class Meta:
        collection = "uow_rv_locked"
        optimistic_lock = True


class RvAnimal(odm.Document):
    name: str = "a"

    class Meta:
        collection = "uow_rv_animals"
        polymorphic = True


class RvCat(RvAnimal):
    lives: int = 9


class RvDictId(odm.Document):
    id: dict[str, int] = odm.Field(alias="_id")
    n: int = 0

    class Meta:
        collection = "uow_rv_dict_ids"


class Abort(Exception):
    """The block's own failure."""


async def _reinsert(held: Any, n: int) -> Any:
    """Delete ``held``'s document through a copy of it and insert the id again through that
    copy with ``n``; return the copy."""
    other = copy.copy(held)
    await other.delete()
    other.n = n
    await other.insert()
    return other


# -- the id deleted again after the insert ---------------------------------------------------


async def _delete_through_the_inserted_object(inserted: Any) -> None:
    await inserted.delete()


async def _delete_through_a_queryset(inserted: Any) -> None:
    assert await type(inserted).objects.filter(id=inserted.id).delete() == 1


async def _delete_through_a_copy(inserted: Any) -> None:
    await copy.copy(inserted).delete()


SECOND_DELETES = {
    "inserted": _delete_through_the_inserted_object,
    "queryset": _delete_through_a_queryset,
    "copy": _delete_through_a_copy,
}


@pytest.mark.parametrize("how", sorted(SECOND_DELETES))
async def test_a_held_object_is_told_its_reinserted_id_was_deleted_again(
    odm_database: Any, how: str
) -> None:
    document = await RvItem(n=1).insert()
    async with transaction():
        held = await RvItem.objects.get(id=document.id)
        other = await _reinsert(held, 5)
        assert held.is_stored and held.n == 5
        await SECOND_DELETES[how](other)
        assert not held.is_stored  # it learnt the insert: the delete reaches it too
    assert await stored(document) is None
    await truthful(held)


async def test_a_held_object_learns_the_last_of_several_inserts_of_its_id(
    odm_database: Any,
) -> None:
    document = await RvItem(n=1).insert()
    async with transaction():
        held = await RvItem.objects.get(id=document.id)
        other = await _reinsert(held, 5)
        await other.delete()
        again = RvItem(id=document.id, n=7)
        await RvItem.objects.bulk_create([again])
        assert held.is_stored and held.n == 7
    await truthful(held, fields=True)
    held.tags.append("t")
    await held.save()  # an update: no DuplicateKey
    assert await stored(document) == {"_id": document.id, "n": 7, "tags": ["t"]}


async def test_an_aborted_delete_insert_delete_insert_leaves_the_held_object_as_it_was(
    odm_database: Any,
) -> None:
    document = await RvItem(n=1).insert()
    with pytest.raises(Abort):
        async with transaction():
            held = await RvItem.objects.get(id=document.id)
            other = await _reinsert(held, 5)
            await other.delete()
            await RvItem(id=document.id, n=7).insert()
            raise Abort
    await truthful(held, fields=True)


@pytest.mark.odm_drivers("pymongo")
async def test_a_held_object_of_a_compound_id_is_told_of_each_delete_and_insert(
    odm_database: Any,
) -> None:
    document = await RvDictId(id={"a": 1, "b": 2}, n=1).insert()
    async with transaction():
        held = await RvDictId.objects.get(id={"a": 1, "b": 2})
        other = await _reinsert(held, 5)
        assert held.is_stored and held.n == 5
        await other.delete()
        assert not held.is_stored
        await RvDictId(id={"a": 1, "b": 2}, n=7).insert()
        assert held.is_stored and held.n == 7
    await truthful(held, fields=True)
    assert (await stored(document) or {}).get("n") == 7


# -- an object of another class of the family ------------------------------------------------


async def test_a_held_object_of_another_class_does_not_take_the_inserted_document(
    odm_database: Any,
) -> None:
    document = await RvAnimal(name="x").insert()
    async with transaction():
        held = await RvAnimal.objects.get(id=document.id)
        await RvAnimal.objects.filter(id=document.id).delete()
        await RvCat(id=document.id, name="tom", lives=3).insert()
        assert not held.is_stored  # an RvAnimal cannot stand for the RvCat stored now
    held.name = "renamed"
    with pytest.raises(odm.DuplicateKey):
        await held.save()  # refused: never stores its own class over the cat
    loaded = await RvAnimal.objects.get(id=document.id)
    assert type(loaded) is RvCat and (loaded.name, loaded.lives) == ("tom", 3)


# -- Meta.optimistic_lock: the insert may store the version again (ABA) ----------------------


async def _through_a_copy(held: Any, before: Any) -> None:
    other = copy.copy(held)
    other.tags = []  # not the held object's own change
    await other.delete()
    other.n = 5
    await other.insert()  # the version the held object was loaded with, stored again


async def _through_an_object_loaded_before(held: Any, before: Any) -> None:
    await before.delete()
    before.n = 5
    await before.insert()


LOCKED_REINSERTS = {"copy": _through_a_copy, "loaded_before": _through_an_object_loaded_before}


@pytest.mark.parametrize("how", sorted(LOCKED_REINSERTS))
async def test_a_locked_held_object_with_changes_is_refused_after_its_id_is_reinserted(
    odm_database: Any, how: str
) -> None:
    document = await RvLocked(n=1).insert()
    before = await RvLocked.objects.get(id=document.id)
    async with transaction():
        held = await RvLocked.objects.get(id=document.id)
        held.tags.append("mine")  # made on the document the block deletes
        await LOCKED_REINSERTS[how](held, before)
    inserted = await stored(document)
    assert inserted is not None and (inserted["n"], inserted["tags"]) == (5, [])
    assert not held.is_stored  # its changes were made on a deleted document
    with pytest.raises(odm.DuplicateKey):
        await held.save()  # never written over the inserted document
    assert await stored(document) == inserted
    assert held.tags == ["mine"]  # the user's intent stays, to refresh() and apply again


async def test_a_locked_held_object_without_changes_learns_its_reinserted_id(
    odm_database: Any,
) -> None:
    document = await RvLocked(n=1).insert()
    async with transaction():
        held = await RvLocked.objects.get(id=document.id)
        await _through_a_copy(held, None)
        assert held.is_stored and held.n == 5
    await truthful(held, fields=True)
    held.n = 6
    await held.save()
    assert (await stored(document) or {}).get("n") == 6


# -- how the block ends ----------------------------------------------------------------------


@pytest.mark.usefixtures("fail_points_off")
@pytest.mark.odm_drivers("pymongo")
async def test_a_block_run_again_after_a_transient_commit_error_starts_afresh(
    odm_database: Any,
) -> None:
    document = await RvItem(n=1).insert()
    outside = await RvItem.objects.get(id=document.id)  # used by both attempts
    held: list[Any] = []

    @odm.atomic(retries=2)
    async def body() -> None:
        held.append(await RvItem.objects.get(id=document.id))
        await outside.delete()
        outside.n = 10 * len(held)
        await outside.insert()
        assert held[-1].is_stored and held[-1].n == outside.n
        if len(held) == 1:  # the first commit fails with a transient error
            await _outside_the_block(fail_point(odm_database, {
                "failCommands": ["commitTransaction"], "errorCode": 112,
                "errorLabels": ["TransientTransactionError"],
            }))

    await body()
    assert len(held) == 2
    await truthful(outside, fields=True)
    await truthful(held[1], fields=True)
    assert held[1].n == 20
    # the first attempt's object is put back as it was loaded: a copy of its time
    assert held[0].is_stored and held[0].n == 1


async def test_an_inner_block_failing_after_a_reinsert_puts_every_object_back(
    odm_database: Any,
) -> None:
    document = await RvItem(n=1).insert()
    with pytest.raises(odm.TransactionError):
        async with transaction():
            held = await RvItem.objects.get(id=document.id)
            with pytest.raises(Abort):
                async with transaction():
                    other = await _reinsert(held, 5)
                    raise Abort
    await truthful(held, fields=True)
    await truthful(other)  # the copy too: stored, as before the block
    assert (await stored(document) or {}).get("n") == 1


@pytest.mark.usefixtures("fail_points_off")
@pytest.mark.odm_drivers("pymongo")
@pytest.mark.parametrize("cut", ["delete", "insert"])
async def test_a_delete_or_insert_cut_off_in_the_block_puts_every_object_back(
    odm_database: Any, cut: str
) -> None:
    document = await RvItem(n=1).insert()
    hold = {"failCommands": [cut], "blockConnection": True, "blockTimeMS": 150}
    with pytest.raises((TimeoutError, odm.TransactionError)):
        async with transaction():
            held = await RvItem.objects.get(id=document.id)
            other = copy.copy(held)
            other.n = 5
            if cut == "insert":
                await other.delete()
            await _outside_the_block(fail_point(odm_database, hold))
            async with asyncio.timeout(0.03):
                await (other.insert() if cut == "insert" else other.delete())
    await asyncio.sleep(0.2)  # the held command runs on the server, then is rolled back
    assert (await stored(document) or {}).get("n") == 1
    await truthful(held, fields=True)


async def _outside_the_block(call: Any) -> None:
    """Run ``call`` with no bound session (inside a block it would join the transaction)."""
    await asyncio.create_task(call, context=contextvars.Context())
