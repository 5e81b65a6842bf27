"""``bulk_create`` marks its documents as ``insert()`` marks one, in the two cases where it
did not:

- the copies of a document (``model_copy()``, ``copy.copy``) diff against what its insert
  stored: ``bulk_create`` left them on what an earlier incarnation of the id (deleted since)
  stored, so the document's next ``save()`` pushed an append again, and a copy made after the
  call sent its changes against the wrong state;
- a write concern error (the write was applied, not confirmed: a failover may roll it back)
  leaves an ``insert()``'s document of unknown outcome, its next ``save()`` reading first;
  ``bulk_create`` marked its documents stored, whether it sent them in one ``insert`` or in
  chunks.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from pymongo.errors import BulkWriteError, WriteConcernError

import odm
from odm import bulk, executor, transaction
from odm.models.tracking import Unsure, get_snapshot


class MlItem(odm.Document):
    n: int = 0
    tags: list[str] = []

    class Meta:
        collection = "ml_items"


class Abort(Exception):
    """The block's own failure."""


async def by_insert(document: MlItem) -> None:
    await document.insert()


async def by_bulk_create(document: MlItem) -> None:
    await MlItem.objects.bulk_create([document])


INSERTS: dict[str, Callable[[MlItem], Awaitable[None]]] = {
    "insert": by_insert,
    "bulk_create": by_bulk_create,
}
#: A write concern error the driver does not retry: the write was applied and acknowledged.
UNCONFIRMED = {"writeConcernError": {"code": 64, "errmsg": "waiting for replication timed out"}}


async def stored(document: MlItem) -> dict[str, Any] | None:
    """The document the server holds under ``document``'s id."""
    raw: dict[str, Any] | None = await executor.collection(MlItem).find_one({"_id": document.id})
    return raw


@pytest.fixture
async def fail_inserts(odm_database: Any) -> AsyncIterator[Callable[..., Awaitable[None]]]:
    """``await fail_inserts(times, **data)``: the next ``times`` inserts fail as ``data``
    says; the fail point is switched off after the test."""

    async def arm(times: int = 1, **data: Any) -> None:
        await odm_database.client.admin.command({
            "configureFailPoint": "failCommand",
            "mode": {"times": times},
            "data": {"failCommands": ["insert"], **data},
        })

    yield arm
    await odm_database.client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})


# -- the copies of a document inserted again ----------------------------------------------------


@pytest.mark.parametrize("how", sorted(INSERTS))
async def test_the_document_and_its_copies_diff_against_what_the_insert_stored(
    odm_database: Any, how: str
) -> None:
    doc = await MlItem(tags=["a"]).insert()
    before = doc.model_copy()  # a copy of the incarnation deleted below
    await doc.delete()
    doc.n = 7
    doc.tags.append("b")  # shared with the copy (model_copy is shallow)
    await INSERTS[how](doc)
    after = copy.copy(doc)
    doc.tags.append("c")
    await doc.save()  # an append to what the insert stored: once
    assert (await stored(doc) or {})["tags"] == ["a", "b", "c"]
    after.n = 9
    await after.save()  # against what doc saved: n only
    raw = await stored(doc) or {}
    assert (raw["n"], raw["tags"]) == (9, ["a", "b", "c"])
    assert get_snapshot(after) == raw
    await before.save()  # a copy's save makes the stored document what it holds: n=0
    raw = await stored(doc) or {}
    assert (raw["n"], raw["tags"]) == (0, ["a", "b", "c"])
    assert get_snapshot(before) == raw == before.to_bson()


@pytest.mark.parametrize("how", sorted(INSERTS))
@pytest.mark.parametrize("commit", [True, False])
async def test_in_a_block_too_and_an_abort_puts_it_back(
    odm_database: Any, how: str, commit: bool
) -> None:
    doc = await MlItem(tags=["a"]).insert()
    before = doc.model_copy(deep=True)
    await doc.delete()
    doc.tags.append("b")
    with pytest.raises(Abort) if not commit else contextlib.nullcontext():
        async with transaction():
            await INSERTS[how](doc)
            inside = copy.copy(doc)
            if not commit:
                raise Abort
    if commit:  # the commit's flush had nothing to teach it: it says what it inserted
        assert get_snapshot(doc) == await stored(doc) == doc.to_bson() == inside.to_bson()
    else:  # the insert was rolled back: the copies say so
        assert not doc.is_stored and not inside.is_stored
        await doc.insert()
    doc.tags.append("c")
    await doc.save()
    assert (await stored(doc) or {})["tags"] == ["a", "b", "c"]
    before.n = 3
    await before.save()
    raw = await stored(doc) or {}
    assert (raw["n"], raw["tags"]) == (3, ["a"])
    assert get_snapshot(before) == raw


# -- a write concern error ---------------------------------------------------------------------


@pytest.mark.usefixtures("fail_inserts")
async def test_an_unconfirmed_insert_leaves_its_documents_of_unknown_outcome(
    odm_database: Any, fail_inserts: Callable[..., Awaitable[None]]
) -> None:
    one = MlItem(n=1)
    await fail_inserts(**UNCONFIRMED)
    with pytest.raises(WriteConcernError):
        await one.insert()
    many = [MlItem(n=i) for i in range(3)]
    await fail_inserts(**UNCONFIRMED)
    with pytest.raises(BulkWriteError) as failed:
        await MlItem.objects.bulk_create(many)
    assert failed.value.details["nInserted"] == 3
    for document in (one, *many):
        snapshot = get_snapshot(document)
        assert type(snapshot) is Unsure and not snapshot.existed  # as the insert() left it
        assert not document.is_stored
    for document in (one, many[1]):
        document.tags.append("x")
        await document.save()  # reads first: stored, so an update (no DuplicateKey)
        raw = await stored(document)
        assert raw == get_snapshot(document) == document.to_bson()
    assert await MlItem.objects.count() == 4


async def test_an_unconfirmed_chunk_leaves_only_its_own_documents_of_unknown_outcome(
    odm_database: Any,
    fail_inserts: Callable[..., Awaitable[None]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Eight documents split in chunks of 2, 3 and 3; the first chunk's write concern fails.
    monkeypatch.setattr(bulk, "SPLIT_ABOVE", 4)
    monkeypatch.setattr(bulk, "FIRST_CHUNK", 2)
    monkeypatch.setattr(bulk, "MIN_CHUNK", 2)
    docs = [MlItem(n=i) for i in range(8)]
    await fail_inserts(**UNCONFIRMED)
    with pytest.raises(BulkWriteError) as failed:
        await MlItem.objects.bulk_create(docs)
    assert failed.value.details["nInserted"] == 8
    assert [type(get_snapshot(doc)) is Unsure for doc in docs] == [True] * 2 + [False] * 6
    for doc in docs[2:]:
        assert doc.is_stored and get_snapshot(doc) == await stored(doc)
    docs[0].n = 10
    await docs[0].save()
    assert (await stored(docs[0]) or {})["n"] == 10
    assert await MlItem.objects.count() == 8
