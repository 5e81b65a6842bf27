"""What the objects say after a write ends, in the cases an attacker's review of session 19
found wrong, each on both drivers:

- a copy given another id (``model_copy(update={"id": ...})``, ``doc.id = new``) and then
  inserted, saved, refreshed or bulk-created told its family of copies, which still stand for
  the old id, that the new document was their stored form: they no longer diffed against
  what their family had written, and a shallow copy's append was pushed twice;
- a document given another id whose insert was cut off (it ran) did not know it might be
  stored: ``is_stored`` was false and its next ``save()`` inserted again, refused as a
  duplicate key;
- a lone surrogate in a ``dict[str, int]`` key was refused by ``save()`` and by the flush
  with an error that named no field;
- inside a block, a save through another object of a held id whose held object has changes
  of its own that the model refuses on top of it (a validator across fields): the held object
  learnt nothing and the commit stored a document no query could load again, while the held
  object said the old values were stored;
- documents whose ``_id`` is compound (a dict, an embedded model: unhashable) were never held
  by the unit of work: their changes in a block were silently not written at the commit, and
  two loads gave two objects.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
from collections.abc import Awaitable, Callable
from typing import Any

import bson
import pytest
from pydantic import ValidationError, model_validator
from pymongo.errors import ConnectionFailure
from uow_support import fail_point, stored, truthful

import odm
from odm import executor, transaction
from odm.models.copies import known_state
from odm.models.tracking import get_snapshot, stored_id
from odm.session import current_unit_of_work


class AtItem(odm.Document):
    n: int = 0
    tags: list[str] = []
    meta: dict[str, int] = {}

    class Meta:
        collection = "at_items"


class AtRange(odm.Document):
    lo: int = 0
    hi: int = 10

    class Meta:
        collection = "at_ranges"

    @model_validator(mode="after")
    def ordered(self) -> AtRange:
        """A validator across fields: ``lo`` never above ``hi``."""
        if self.lo > self.hi:
            raise ValueError("lo is above hi")
        return self


class AtPair(odm.Embedded):
    a: int
    b: int


class AtDictId(odm.Document):
    id: dict[str, int] = odm.Field(alias="_id")
    n: int = 0
    tags: list[str] = []

    class Meta:
        collection = "at_dict_ids"


class AtModelId(odm.Document):
    id: AtPair = odm.Field(alias="_id")
    n: int = 0
    tags: list[str] = []

    class Meta:
        collection = "at_model_ids"


class Abort(Exception):
    """The block's own failure."""


def believed(document: Any) -> dict[str, Any] | None:
    """What ``document`` believes is stored: its snapshot, or the later stored form its
    family of copies learnt."""
    snapshot = get_snapshot(document)
    return None if snapshot is None else known_state(document, snapshot)


async def stored_as_is(document: Any) -> dict[str, Any] | None:
    """The document the server holds under ``document``'s ``_id``, found by its stored form
    (a compound id, an embedded model, cannot be sent as it is)."""
    raw: dict[str, Any] | None = await executor.collection(type(document)).find_one(
        {"_id": stored_id(document)}
    )
    return raw


# -- a copy given another id leaves its family -------------------------------------------------


async def _insert(document: Any) -> None:
    await document.insert()


async def _save(document: Any) -> None:
    await document.save()  # a new id: save() inserts


async def _bulk_create(document: Any) -> None:
    await AtItem.objects.bulk_create([document])


async def _refresh(document: Any) -> None:
    await AtItem(id=document.id).insert()  # the new id is stored already: refresh() reads it
    await document.refresh()


WRITES_UNDER_A_NEW_ID: dict[str, Callable[[Any], Awaitable[None]]] = {
    "insert": _insert,
    "save": _save,
    "bulk_create": _bulk_create,
    "refresh": _refresh,
}


@pytest.mark.parametrize("write", sorted(WRITES_UNDER_A_NEW_ID))
@pytest.mark.parametrize("where", ["outside", "in_a_block"])
async def test_a_copy_given_another_id_leaves_its_family(
    odm_database: Any, write: str, where: str
) -> None:
    original = await AtItem().insert()
    shallow = copy.copy(original)  # shares the tags list with the original
    shallow.tags.append("x")
    await shallow.save()  # the family knows the append is stored
    other = original.model_copy(update={"id": bson.ObjectId()})  # another document
    if where == "outside":
        await WRITES_UNDER_A_NEW_ID[write](other)
    else:
        async with transaction():
            await WRITES_UNDER_A_NEW_ID[write](other)
    await original.save()  # the shared list holds the append: stored already
    raw = await stored(original)
    assert raw is not None and raw["tags"] == ["x"]
    assert believed(original) == raw == original.to_bson()
    assert other.is_stored


async def test_a_copy_given_another_id_in_an_aborted_block_is_not_stored(
    odm_database: Any,
) -> None:
    original = await AtItem().insert()
    shallow = copy.copy(original)
    other = original.model_copy(update={"id": bson.ObjectId()})
    with pytest.raises(Abort):
        async with transaction():
            await other.insert()
            raise Abort
    assert not other.is_stored and await stored(other) is None
    shallow.tags.append("x")
    await shallow.save()
    await original.save()
    assert (await stored(original) or {})["tags"] == ["x"]
    await other.save()  # inserted now, once
    await truthful(other, fields=True)


# -- a document given another id whose insert was cut off --------------------------------------


async def test_a_new_id_whose_insert_was_cut_off_looks_before_inserting_again(
    odm_database: Any, fail_points_off: None
) -> None:
    document = await AtItem(n=1).insert()
    document.id = bson.ObjectId()  # a new document
    document.n = 2
    hold = {"failCommands": ["insert"], "blockConnection": True, "blockTimeMS": 150}
    # Armed from an empty context: nothing of the test's may send it in a session.
    await asyncio.create_task(fail_point(odm_database, hold), context=contextvars.Context())
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.03):
            await document.save()
    await asyncio.sleep(0.25)  # the server ran the held insert
    assert await stored(document) is not None
    await document.save()  # reads first: stored already, nothing to insert
    await truthful(document, fields=True)


# -- a lone surrogate in a dict key ----------------------------------------------------------


@pytest.mark.parametrize("where", ["save", "flush"])
async def test_a_lone_surrogate_in_a_dict_key_is_refused_naming_the_field(
    odm_database: Any, where: str
) -> None:
    document = await AtItem(meta={"k": 1}).insert()
    with pytest.raises(ValidationError) as refused:
        if where == "save":
            document.meta["\ud800"] = 2
            await document.save()
        else:
            async with transaction():
                held = await AtItem.objects.get(id=document.id)
                held.meta["\ud800"] = 2
    assert refused.value.errors()[0]["loc"] == ("meta",)
    assert (await stored(document) or {})["meta"] == {"k": 1}



# -- the held object cannot take what another object saved ----------------------------------


async def test_a_held_object_whose_changes_its_model_refuses_on_top_of_a_save(
    odm_database: Any,
) -> None:
    stored_range = await AtRange().insert()
    other = await AtRange.objects.get(id=stored_range.id)  # loaded before the block
    with pytest.raises(odm.TransactionError):
        async with transaction():
            held = await AtRange.objects.get(id=stored_range.id)
            held.hi = 12  # its own change: 0 <= 12
            other.hi, other.lo = 20, 15
            with pytest.raises(ValidationError, match="lo is above hi"):
                await other.save()  # lo=15 with the held hi=12: refused by the model
            uow = current_unit_of_work()
            assert uow is not None
            with pytest.raises(odm.TransactionError, match="changes of its own"):
                await uow.flush()
    raw = await stored(stored_range)
    assert raw is not None and (raw["lo"], raw["hi"]) == (0, 10)
    await AtRange.objects.get(id=stored_range.id)  # loadable
    await truthful(held)
    await truthful(other)


# -- compound ids are held --------------------------------------------------------------------

#: (model, a compound id of it)
COMPOUND = {
    "dict": (AtDictId, lambda: {"a": 1, "b": 2}),
    "embedded": (AtModelId, lambda: AtPair(a=1, b=2)),
}


@pytest.mark.parametrize("kind", sorted(COMPOUND))
async def test_a_document_of_a_compound_id_is_held_and_flushed(
    odm_database: Any, kind: str
) -> None:
    model, ident = COMPOUND[kind]
    document = await model(id=ident()).insert()
    async with transaction():
        held = await model.objects.get(id=ident())
        assert await model.objects.get(id=ident()) is held  # one object per id
        held.n = 5
        held.tags.append("x")
    raw = await stored_as_is(document)
    assert raw is not None and (raw["n"], raw["tags"]) == (5, ["x"])
    assert get_snapshot(held) == raw == held.to_bson()
    with pytest.raises(Abort):
        async with transaction():
            held = await model.objects.get(id=ident())
            held.n = 6
            await held.save()
            raise Abort
    assert get_snapshot(held) == await stored_as_is(document)
    await held.save()  # the aborted write is not "done"
    assert (await stored_as_is(document) or {})["n"] == 6


@pytest.mark.odm_drivers("pymongo")  # the key the read back finds it by: no driver's own
@pytest.mark.parametrize("kind", sorted(COMPOUND))
async def test_a_compound_id_is_read_back_after_a_commit_of_unknown_outcome(
    odm_database: Any, fail_points_off: None, kind: str
) -> None:
    model, ident = COMPOUND[kind]
    document = await model(id=ident()).insert()
    lost = {"failCommands": ["commitTransaction"], "closeConnection": True}
    with pytest.raises((ConnectionFailure, odm.OperationTimeout)):
        async with transaction(timeout=0.2):
            held = await model.objects.get(id=ident())
            held.n = 5
            await asyncio.create_task(
                fail_point(odm_database, lost, times=1000), context=contextvars.Context()
            )
    assert get_snapshot(held) == await stored_as_is(document)


@pytest.mark.parametrize("kind", sorted(COMPOUND))
async def test_a_queryset_write_beside_a_held_compound_id(
    odm_database: Any, kind: str
) -> None:
    model, ident = COMPOUND[kind]
    document = await model(id=ident()).insert()
    async with transaction():
        held = await model.objects.get(id=ident())
        held.tags.append("x")
        await model.objects.filter(n=0).update(n=7)  # flushes the append first
    raw = await stored_as_is(document)
    assert raw is not None and (raw["n"], raw["tags"]) == (7, ["x"])
