"""bulk_create outside a transaction, failing in a later message of an ``insert_many``: PyMongo
sends a list in messages of at most 48 MB, so a failure there comes after the documents of the
earlier messages went in. Every document must then say what the database holds.

- a command error (or a lost connection) names no document: the driver does not say how many
  messages went in before it. A split list's chunks are sent by odm in runs of one message
  each, so the documents of the runs acknowledged are stored, those of the failed run are not
  (or, after a lost connection, of unknown outcome) and the rest were never sent; for a short
  list the driver split, odm reads the ids back once the server refused a message, and each
  document says what that read found. Before, the documents of the earlier messages were
  marked not stored while the database held them, then all of unknown outcome;
- a retryable write concern error stops the driver after its message (once its retry failed):
  the documents after it were never sent, yet were marked stored; those it acknowledged are
  of unknown outcome (a failover may still roll them back), as an ``insert()``'s would be;
- a write error (a duplicate ``_id``) in a later message: the ``BulkWriteError`` indexes the
  whole list, and every other document is marked as the server did (already right before).

Documents of 1 MB, about 50 of them: the first message holds 47. Fail points are armed for
this file's client alone (its ``appName``): other clients of the server are left alone. Each
test sends about 50 MB, so most run under PyMongo only (Motor runs the same driver code).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo.errors import AutoReconnect, BulkWriteError, OperationFailure

import odm
from odm import bulk, connection
from odm.models.tracking import Unsure, get_snapshot

pytestmark = pytest.mark.odm_drivers("pymongo")

#: The client name the fail points of this file match.
APP = "odm-bulk-later-message"
#: A value of about 1 MB: 47 documents holding it fill the driver's first message.
BLOB = "x" * 1_000_000


class LmItem(odm.Document):
    n: int = 0
    blob: str = BLOB

    class Meta:
        collection = "lm_items"


@pytest.fixture
async def db(odm_uri: str, odm_driver: Any) -> AsyncIterator[Any]:
    """A fresh database bound to the default alias through a client named :data:`APP`;
    any fail point is switched off, and the database dropped, afterwards."""
    name = f"odm_test_{uuid.uuid4().hex[:12]}"
    conn = await connection.open_connection(
        odm_uri, db=name, driver=odm_driver, timeout=30.0, appname=APP
    )
    try:
        yield conn.database
    finally:
        try:
            await conn.client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
            await conn.client.drop_database(name)
        finally:
            await connection.disconnect(None)


@pytest.fixture
def split(monkeypatch: pytest.MonkeyPatch) -> None:
    """Split a list of more than 4 documents, its first chunk of 50 (over one message: odm
    sends it in two runs, of 47 and 3), then the rest, instead of the thousands a split needs."""
    monkeypatch.setattr(bulk, "SPLIT_ABOVE", 4)
    monkeypatch.setattr(bulk, "FIRST_CHUNK", 50)
    monkeypatch.setattr(bulk, "MIN_CHUNK", 2)


async def fail_later_inserts(db: Any, skip: int = 1, **data: Any) -> None:
    """Fail every ``insert`` of this file's client after the first ``skip`` (a retry too)."""
    await db.client.admin.command({
        "configureFailPoint": "failCommand",
        "mode": {"skip": skip},
        "data": {"failCommands": ["insert"], "appName": APP, **data},
    })


async def fail_points_off(db: Any) -> None:
    """Switch the fail point off."""
    await db.client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})


def unsure(document: LmItem) -> bool:
    """Tell whether ``document`` is of unknown outcome (its next save() reads first)."""
    return type(get_snapshot(document)) is Unsure


async def stored_ids(db: Any) -> set[Any]:
    """The ids the collection holds."""
    return {raw["_id"] async for raw in db["lm_items"].find({}, {"_id": 1})}


async def assert_marked(db: Any, docs: list[LmItem], *, unknown: range = range(0)) -> None:
    """Fail unless each of ``docs`` says whether it is stored as the database does (the
    ones at ``unknown``, and only those, are of unknown outcome), the stored ones with the
    snapshot of an insert (checked each side of every boundary)."""
    held = await stored_ids(db)
    assert [i for i, doc in enumerate(docs) if unsure(doc)] == list(unknown)
    wrong = [
        i for i, doc in enumerate(docs) if i not in unknown and doc.is_stored != (doc.id in held)
    ]
    assert wrong == [], f"{len(held)} stored; these say otherwise: {wrong}"
    edges = {0, len(docs) - 1, *(i for i in range(1, len(docs)) if docs[i].is_stored
                                  != docs[i - 1].is_stored)}
    for i in sorted(edges):
        if docs[i].is_stored:
            raw = await db["lm_items"].find_one({"_id": docs[i].id})
            assert get_snapshot(docs[i]) == raw == docs[i].to_bson()


async def saves_as_stored(db: Any, doc: LmItem) -> None:
    """Change ``doc`` and save it: an update when the database holds it, else an insert
    (never a DuplicateKey, never a second document)."""
    before = await db["lm_items"].count_documents({})
    held = await db["lm_items"].find_one({"_id": doc.id}, {"_id": 1}) is not None
    doc.n += 1000
    await doc.save()
    assert await db["lm_items"].count_documents({}) == before + (0 if held else 1)
    raw = await db["lm_items"].find_one({"_id": doc.id})
    assert raw is not None and raw["n"] == doc.n and get_snapshot(doc) == raw


# -- a split list: odm's runs of one message each ------------------------------------------


@pytest.mark.usefixtures("split")
async def test_a_refused_later_run_leaves_the_earlier_one_stored(db: Any) -> None:
    """Unordered: a command error stops the insert as well."""
    docs = [LmItem(n=i) for i in range(52)]
    await fail_later_inserts(db, errorCode=2)  # BadValue: not retried
    with pytest.raises(OperationFailure):
        await LmItem.objects.bulk_create(docs, ordered=False)
    await fail_points_off(db)
    held = await stored_ids(db)
    assert 0 < len(held) < 50
    assert held == {doc.id for doc in docs[: len(held)]}
    await assert_marked(db, docs)
    await saves_as_stored(db, docs[len(held) - 1])  # an update, not a DuplicateKey
    await saves_as_stored(db, docs[len(held)])  # an insert


@pytest.mark.usefixtures("split")
async def test_a_lost_later_run_leaves_the_earlier_one_stored_and_its_own_unknown(
    db: Any,
) -> None:
    """The driver retries the insert once on a new connection: that fails too."""
    docs = [LmItem(n=i) for i in range(52)]
    await fail_later_inserts(db, closeConnection=True)
    with pytest.raises(AutoReconnect):
        await LmItem.objects.bulk_create(docs)
    await fail_points_off(db)
    sent = len(await stored_ids(db))
    assert 0 < sent < 50
    await assert_marked(db, docs, unknown=range(sent, 50))  # the second run; not the chunk after
    await saves_as_stored(db, docs[sent - 1])
    await saves_as_stored(db, docs[sent])  # reads first: not stored, so inserted


# -- a short list: one insert_many, which the driver splits -----------------------------------


@pytest.mark.odm_drivers("pymongo", "motor")
async def test_a_refused_later_message_is_read_back_for_every_document_of_the_list(
    db: Any,
) -> None:
    docs = [LmItem(n=i) for i in range(50)]
    await fail_later_inserts(db, errorCode=2)
    with pytest.raises(OperationFailure):
        await LmItem.objects.bulk_create(docs)
    await fail_points_off(db)
    sent = len(await stored_ids(db))
    assert 0 < sent < 50
    await assert_marked(db, docs)  # none of unknown outcome: the ids were read back
    await saves_as_stored(db, docs[sent - 1])  # stored: updated
    await saves_as_stored(db, docs[sent])  # not stored: inserted
    assert docs[sent - 1].is_stored and docs[sent].is_stored


async def test_a_write_concern_error_the_driver_stops_at_leaves_the_rest_unsent(db: Any) -> None:
    """A retryable write concern error on the first message, and on its retry: the driver
    stops there; the second message was never sent. The first one's documents are of unknown
    outcome (their write concern was not confirmed)."""
    docs = [LmItem(n=i) for i in range(50)]
    await fail_later_inserts(
        db, skip=0, writeConcernError={"code": 6, "errmsg": "replication unreachable"}
    )
    with pytest.raises(BulkWriteError) as failed:
        await LmItem.objects.bulk_create(docs)
    await fail_points_off(db)
    sent = len(await stored_ids(db))
    assert 0 < sent < 50
    assert failed.value.details["nInserted"] == sent
    await assert_marked(db, docs, unknown=range(sent))
    assert not docs[sent].is_stored


async def test_duplicates_in_both_messages_are_named_and_the_rest_marked(db: Any) -> None:
    """Unordered; another document holds the ids of documents 2 and 48."""
    docs = [LmItem(n=i) for i in range(50)]
    taken = [2, 48]
    await db["lm_items"].insert_many([{"_id": docs[i].id, "n": -1} for i in taken])
    with pytest.raises(odm.DuplicateKey) as failed:
        await LmItem.objects.bulk_create(docs, ordered=False)
    errors = failed.value.__cause__.details["writeErrors"]  # type: ignore[union-attr]
    assert [error["index"] for error in errors] == taken
    mine = [doc for i, doc in enumerate(docs) if i not in taken]
    held = await stored_ids(db)
    assert {doc.id for doc in mine} <= held
    assert [doc.is_stored for doc in mine] == [doc.id in held for doc in mine]
    assert not any(docs[i].is_stored for i in taken)  # another document holds the id
