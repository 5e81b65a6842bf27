"""A write of a document cut off by a cancellation or a deadline outside a transaction: it may
have run on the server or not, so the document stops trusting its snapshot, and its next
``save()`` or ``delete()`` reads the stored document first.

The server holds the write (``failCommand`` with ``blockConnection``) past the caller's
``asyncio.timeout`` or ``timeout=``, then runs it ("ran") or refuses it ("refused"). Either
way, once the held write is over, the next ``save()`` leaves the database equal to the object
(a ``$push`` that ran is not pushed again; a ``$set`` that ran and was undone in memory is
written back), and under the optimistic lock a write by someone else meanwhile still raises
:class:`odm.StaleDocument`. A write that lost its connection, or whose write concern was not
confirmed, is of unknown outcome too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pymongo.errors import ConnectionFailure, WriteConcernError

import odm
from odm import executor
from odm.models.tracking import Unsure, get_snapshot

BLOCK_MS = 150
GIVE_UP = BLOCK_MS / 3000


class CutDoc(odm.Document):
    ref: str
    n: int = 0
    status: str = "new"
    tags: list[str] = []

    class Meta:
        collection = "cut_docs"


class CutLockedDoc(odm.Document):
    ref: str
    tags: list[str] = []

    class Meta:
        collection = "cut_locked_docs"
        optimistic_lock = True


async def cut_off(call: Callable[[float | None], Awaitable[Any]], how: str) -> None:
    """Run ``call`` (given a ``timeout=`` or ``None``) so that it is cut off, and wait until the
    server is done with the held write."""
    with pytest.raises((TimeoutError, odm.OperationTimeout)):
        if how == "asyncio_timeout":
            async with asyncio.timeout(GIVE_UP):
                await call(None)
        else:
            await call(GIVE_UP)
    await asyncio.sleep(BLOCK_MS / 1000 + 0.1)


async def stored(document: odm.Document) -> dict[str, Any] | None:
    raw: dict[str, Any] | None = await executor.collection(type(document)).find_one(
        {"_id": document.id}
    )
    return raw


async def truthful(document: odm.Document) -> None:
    raw = await stored(document)
    assert get_snapshot(document) == raw, (get_snapshot(document), raw)
    assert document.is_stored is (raw is not None)
    if raw is not None:
        assert document.to_bson() == raw
        meta = type(document)._meta
        if meta.optimistic_lock:
            assert getattr(document, meta.version_field) == raw[meta.db_key(meta.version_field)]


HOWS = ["asyncio_timeout", "call_timeout"]
OUTCOMES = ["ran", "refused"]


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("how", HOWS)
async def test_a_push_cut_off_is_not_pushed_twice(hold: Any, how: str, outcome: str) -> None:
    doc = await CutDoc(ref="a").insert()
    doc.tags.append("x")
    await hold("update", outcome == "ran", BLOCK_MS)
    await cut_off(lambda t: doc.save(timeout=t), how)
    assert isinstance(get_snapshot(doc), Unsure)
    # (With timeout=, the driver gives the server the time left as maxTimeMS: a write held
    # past it is not run even when the fail point lets it.)
    assert (await stored(doc) or {})["tags"] in (["x"], [])
    await doc.save()
    assert (await stored(doc) or {})["tags"] == ["x"]
    await truthful(doc)


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("how", HOWS)
async def test_a_set_cut_off_then_undone_in_memory_is_written_back(
    hold: Any, how: str, outcome: str
) -> None:
    doc = await CutDoc(ref="a").insert()
    doc.n = 5
    await hold("update", outcome == "ran", BLOCK_MS)
    await cut_off(lambda t: doc.save(timeout=t), how)
    doc.n = 0  # back to what the snapshot says: without learning, nothing would be sent
    await doc.save()
    assert (await stored(doc) or {})["n"] == 0
    await truthful(doc)


@pytest.mark.parametrize("outcome", OUTCOMES)
async def test_a_field_someone_else_changed_meanwhile_is_left_alone(
    hold: Any, outcome: str
) -> None:
    doc = await CutDoc(ref="a").insert()
    doc.tags.append("x")
    await hold("update", outcome == "ran", BLOCK_MS)
    await cut_off(lambda t: doc.save(timeout=t), "asyncio_timeout")
    await CutDoc.objects.filter(id=doc.id).update(status="paid")
    await doc.save()
    raw = await stored(doc) or {}
    assert (raw["tags"], raw["status"]) == (["x"], "paid")


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("how", HOWS)
async def test_a_locked_save_cut_off_keeps_the_version_true(
    hold: Any, how: str, outcome: str
) -> None:
    doc = await CutLockedDoc(ref="a").insert()
    doc.tags.append("x")
    await hold("update", outcome == "ran", BLOCK_MS)
    await cut_off(lambda t: doc.save(timeout=t), how)
    await doc.save()  # ran: nothing left to send, the version it reached is learnt
    assert (await stored(doc) or {})["tags"] == ["x"]
    await truthful(doc)
    doc.tags.append("y")
    await doc.save()
    await truthful(doc)


@pytest.mark.parametrize("outcome", OUTCOMES)
async def test_a_locked_save_cut_off_then_written_by_someone_else_is_stale(
    hold: Any, outcome: str
) -> None:
    doc = await CutLockedDoc(ref="a").insert()
    doc.tags.append("x")
    await hold("update", outcome == "ran", BLOCK_MS)
    await cut_off(lambda t: doc.save(timeout=t), "asyncio_timeout")
    other = await CutLockedDoc.objects.get(id=doc.id)
    other.tags.append("other")
    await other.save()
    with pytest.raises(odm.StaleDocument):
        await doc.save()
    await doc.refresh()
    await truthful(doc)


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("how", HOWS)
async def test_an_insert_cut_off_is_saved_once(hold: Any, how: str, outcome: str) -> None:
    doc = CutDoc(ref="new", tags=["t"])
    await hold("insert", outcome == "ran", BLOCK_MS)
    await cut_off(lambda t: doc.insert(timeout=t), how)
    assert isinstance(get_snapshot(doc), Unsure)
    await doc.save()  # ran: nothing to send; refused: inserted now
    assert await CutDoc.objects.filter(ref="new").count() == 1
    await truthful(doc)


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("how", HOWS)
async def test_a_delete_cut_off_is_learnt(hold: Any, how: str, outcome: str) -> None:
    doc = await CutLockedDoc(ref="gone").insert()
    await hold("delete", outcome == "ran", BLOCK_MS)
    await cut_off(lambda t: doc.delete(timeout=t), how)
    assert isinstance(get_snapshot(doc), Unsure)
    await doc.delete()  # under the lock: neither stale nor missing, whichever way it went
    assert await stored(doc) is None
    await truthful(doc)


async def test_a_write_cut_off_inside_a_transaction_leaves_the_snapshot_sure(
    hold: Any,
) -> None:
    """Inside a block the transaction is rolled back instead (test_uow_cut_off.py): the abort
    puts the snapshot back, which is then true."""
    doc = await CutDoc(ref="a").insert()
    await hold("update", True, BLOCK_MS)
    with pytest.raises(odm.TransactionError):
        async with odm.transaction():
            doc.tags.append("x")
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(GIVE_UP):
                    await doc.save()
    await asyncio.sleep(BLOCK_MS / 1000 + 0.1)
    assert not isinstance(get_snapshot(doc), Unsure)
    assert get_snapshot(doc) == await stored(doc)


@pytest.mark.parametrize("count", [3, 1500])  # one insert_many, and a list sent in chunks
@pytest.mark.parametrize("outcome", OUTCOMES)
async def test_a_bulk_create_cut_off_leaves_each_document_saved_once(
    hold: Any, outcome: str, count: int
) -> None:
    docs = [CutDoc(ref=f"b{i}", n=i) for i in range(count)]
    await hold("insert", outcome == "ran", BLOCK_MS)  # the first chunk is held
    await cut_off(lambda t: CutDoc.objects.timeout(t).bulk_create(docs), "asyncio_timeout")
    unsure = [doc for doc in docs if isinstance(get_snapshot(doc), Unsure)]
    assert unsure, "no document says it does not know"
    stored_refs = set(await CutDoc.objects.values_list("ref", flat=True))
    for doc in docs:  # the others know: stored (acknowledged) or not (never sent)
        if not isinstance(get_snapshot(doc), Unsure):
            assert doc.is_stored is (doc.ref in stored_refs), doc.ref
    for doc in docs:
        await doc.save()
    refs = await CutDoc.objects.values_list("ref", flat=True)
    assert sorted(refs) == sorted(f"b{i}" for i in range(count))
    for doc in docs[:5] + docs[-5:]:
        await truthful(doc)


async def arm(db: Any, times: int, **data: Any) -> None:
    await db.client.admin.command(
        {"configureFailPoint": "failCommand", "mode": {"times": times}, "data": data}
    )


async def test_a_push_whose_write_concern_failed_is_not_pushed_twice(
    odm_database: Any, hold: Any
) -> None:
    """The primary applied it, the write concern was not confirmed: its outcome is unknown
    (a failover may roll it back), so the next save looks first."""
    doc = await CutDoc(ref="a").insert()
    doc.tags.append("x")
    await arm(
        odm_database, 1, failCommands=["update"],
        writeConcernError={"code": 64, "errmsg": "waiting for replication timed out"},
    )
    with pytest.raises(WriteConcernError):
        await doc.save()
    assert isinstance(get_snapshot(doc), Unsure)
    await doc.save()
    assert (await stored(doc) or {})["tags"] == ["x"]
    await truthful(doc)


async def test_a_save_that_lost_its_connection_twice_looks_first(
    odm_database: Any, hold: Any
) -> None:
    """The first attempt and the driver's one retry both lost their connection."""
    doc = await CutDoc(ref="a").insert()
    doc.tags.append("x")
    await arm(odm_database, 2, failCommands=["update"], closeConnection=True)
    with pytest.raises(ConnectionFailure):
        await doc.save()
    assert isinstance(get_snapshot(doc), Unsure)
    await doc.save()
    assert (await stored(doc) or {})["tags"] == ["x"]
    await truthful(doc)
