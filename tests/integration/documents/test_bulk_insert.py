"""bulk_create against the real server: one insert_many up to a chunk, pipelined chunks beyond
(odm.bulk), with MongoDB's ordered / unordered semantics and the bookkeeping after it."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from pymongo.errors import BulkWriteError, DocumentTooLarge, OperationFailure

import odm
from odm import bulk
from odm.contrib.pytest import MonitoredDatabase
from odm.document import Document, Embedded
from odm.exceptions import QueryError
from odm.executor import CommandTooLarge
from odm.models.tracking import get_snapshot


class BulkSize(Embedded):
    width: float
    unit: str = "cm"


class BulkItem(Document):
    name: str
    n: int
    price: float = 1.5
    active: bool = True
    tags: list[str] = []
    created_at: datetime = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    size: BulkSize = BulkSize(width=1.0)
    meta: dict[str, Any] = {}
    data: str = ""

    class Meta:
        collection = "bulk_items"


class BulkShape(Document):
    name: str

    class Meta:
        collection = "bulk_shapes"
        polymorphic = True


class BulkCircle(BulkShape):
    radius: float = 1.0


def items(count: int, first: int = 0) -> list[BulkItem]:
    return [
        BulkItem(name=f"i{i}", n=i, tags=["a", str(i)], size=BulkSize(width=i / 2))
        for i in range(first, first + count)
    ]


def plan(total: int) -> list[int]:
    """The chunk sizes bulk_create sends ``total`` documents in."""
    sizes: list[int] = []
    sent = 0
    while sent < total:
        sizes.append(bulk.chunk_size(sent, total))
        sent += sizes[-1]
    return sizes


def chunk_start(total: int, index: int) -> int:
    """Where the chunk holding document ``index`` starts."""
    start = 0
    for size in plan(total):
        if index < start + size:
            return start
        start += size
    raise IndexError(index)


def stored_flags(docs: list[BulkItem]) -> list[bool]:
    return [d.is_stored for d in docs]


async def stored_ns(db: Any) -> list[int]:
    rows = await db["bulk_items"].find({}, {"n": 1}).sort("n", 1).to_list(None)
    return [r["n"] for r in rows]


@pytest.fixture
async def failpoint(odm_database: Any) -> AsyncIterator[Any]:
    """Arm ``failCommand`` (keyword arguments: its ``data``) for the test; off afterwards."""
    admin = odm_database.client.admin

    async def arm(times: int, **data: Any) -> None:
        await admin.command({
            "configureFailPoint": "failCommand", "mode": {"times": times}, "data": data,
        })

    try:
        yield arm
    finally:
        await admin.command({"configureFailPoint": "failCommand", "mode": "off"})


# -- the chunk plan (no server) -------------------------------------------------------------


def test_chunk_plan() -> None:
    assert plan(1) == [1]
    assert plan(bulk.SPLIT_ABOVE) == [bulk.SPLIT_ABOVE]
    assert plan(10_000) == [250, *[1000] * 8, 875, 437, 438]
    for total in (bulk.SPLIT_ABOVE + 1, 2600, 10_000, 12_345):
        sizes = plan(total)
        assert sum(sizes) == total
        assert sizes[0] == bulk.FIRST_CHUNK
        assert bulk.MIN_CHUNK <= sizes[-1] < 2 * bulk.MIN_CHUNK
        assert max(sizes) <= bulk.CHUNK and min(sizes) > 0


# -- the happy paths ------------------------------------------------------------------------


async def test_a_small_batch_is_one_insert_many_from_the_calling_task(
    monitored: MonitoredDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned: list[str] = []
    create_task = asyncio.create_task

    def spy(coro: Any, **kwargs: Any) -> Any:
        spawned.append(getattr(coro, "__qualname__", ""))
        return create_task(coro, **kwargs)

    monkeypatch.setattr(asyncio, "create_task", spy)  # bulk.py calls it as asyncio.create_task
    docs = items(bulk.SPLIT_ABOVE)
    assert await BulkItem.objects.bulk_create(docs) == docs
    assert monitored.log.names() == ["insert"]
    assert len(monitored.log.named("insert")[0]["documents"]) == bulk.SPLIT_ABOVE
    assert "insert_chunk" not in spawned
    assert all(stored_flags(docs))
    assert get_snapshot(docs[7]) == docs[7].to_bson()


async def test_a_large_batch_goes_in_pipelined_chunks(monitored: MonitoredDatabase) -> None:
    docs = items(2600)
    assert await BulkItem.objects.bulk_create(docs) == docs
    inserts = monitored.log.named("insert")
    assert [len(c["documents"]) for c in inserts] == plan(2600) == [250, 1000, 675, 337, 338]
    assert all(c["ordered"] for c in inserts)
    # Stored exactly as insert() stores them, under the models' own ids (none generated).
    raws = await monitored.database["bulk_items"].find({}).sort("n", 1).to_list(None)
    assert raws == [d.to_bson() for d in docs]
    assert all(stored_flags(docs))
    assert all(get_snapshot(d) == d.to_bson() for d in docs)
    again = await BulkItem.objects.order_by("n").to_list()
    assert again == docs


async def test_mixed_classes_keep_their_own_fields(odm_database: Any) -> None:
    shapes: list[BulkShape] = [
        BulkCircle(name=f"c{i}", radius=i) if i % 3 else BulkShape(name=f"s{i}")
        for i in range(1500)
    ]
    await BulkShape.objects.bulk_create(shapes)
    raws = await odm_database["bulk_shapes"].find({}, {"_id": 0}).to_list(None)
    assert sorted(raws, key=lambda r: int(r["name"][1:])) == [
        {k: v for k, v in s.to_bson().items() if k != "_id"} for s in shapes
    ]
    assert raws[1]["_cls"] == "BulkCircle" and raws[0]["_cls"] == "BulkShape"
    circles = [BulkCircle(name=f"only{i}") for i in range(1200)]  # one class: batch dump
    await BulkCircle.objects.bulk_create(circles)
    assert await BulkCircle.objects.filter(name__startswith="only").count() == 1200


async def test_saving_after_a_bulk_create_sends_only_the_change(
    monitored: MonitoredDatabase,
) -> None:
    docs = items(1100)
    await BulkItem.objects.bulk_create(docs)
    monitored.log.clear()
    docs[1050].price = 9.0
    await docs[1050].save()
    [update] = monitored.log.named("update")
    assert update["updates"][0]["u"] == {"$set": {"price": 9.0}}


# -- ordered=True: stop at the first failure -------------------------------------------------


@pytest.mark.parametrize("total", [500, 2600], ids=["one_chunk", "chunks"])
async def test_ordered_stops_at_the_first_duplicate(
    monitored: MonitoredDatabase, total: int
) -> None:
    taken = await BulkItem(name="taken", n=-1).insert()
    docs = items(total)
    failing = total * 3 // 5  # in the third of the five chunks of 2600
    docs[failing] = BulkItem(id=taken.id, name="dup", n=failing)
    monitored.log.clear()
    with pytest.raises(odm.DuplicateKey, match=r"duplicate key .* breaks unique index '_id_'"):
        await BulkItem.objects.bulk_create(docs)
    assert await stored_ns(monitored.database) == [-1, *range(failing)]
    assert stored_flags(docs) == [True] * failing + [False] * (total - failing)
    sent = [len(c["documents"]) for c in monitored.log.named("insert")]
    assert sum(sent) < total or total <= bulk.SPLIT_ABOVE  # nothing after the failing chunk
    assert sum(sent) - sent[-1] <= failing < sum(sent)


async def test_the_error_indexes_the_whole_list(odm_database: Any) -> None:
    taken = await BulkItem(name="taken", n=-1).insert()
    docs = items(2600)
    docs[2000] = BulkItem(id=taken.id, name="dup", n=2000)
    with pytest.raises(odm.DuplicateKey) as info:
        await BulkItem.objects.bulk_create(docs)
    cause = info.value.__cause__
    assert isinstance(cause, BulkWriteError)
    [error] = cause.details["writeErrors"]
    assert error["index"] == 2000 and error["code"] == 11000
    assert error["op"] == docs[2000].to_bson()
    assert cause.details["nInserted"] == 2000


# -- ordered=False: attempt everything, report every failure ---------------------------------


async def test_unordered_attempts_every_chunk(monitored: MonitoredDatabase) -> None:
    first = await BulkItem(name="first", n=-1).insert()
    second = await BulkItem(name="second", n=-2).insert()
    docs = items(2600)
    docs[100] = BulkItem(id=first.id, name="dup", n=100)
    docs[2500] = BulkItem(id=second.id, name="dup", n=2500)
    monitored.log.clear()
    with pytest.raises(odm.DuplicateKey, match=re.escape(repr(first.id))) as info:
        await BulkItem.objects.bulk_create(docs, ordered=False)
    assert [len(c["documents"]) for c in monitored.log.named("insert")] == plan(2600)
    assert not any(c["ordered"] for c in monitored.log.named("insert"))
    assert await stored_ns(monitored.database) == [
        -2, -1, *(i for i in range(2600) if i not in (100, 2500))
    ]
    assert stored_flags(docs) == [i not in (100, 2500) for i in range(2600)]
    cause = info.value.__cause__
    assert isinstance(cause, BulkWriteError)
    assert [e["index"] for e in cause.details["writeErrors"]] == [100, 2500]
    assert cause.details["nInserted"] == 2598


async def test_unordered_mixed_errors_raise_the_bulk_write_error(odm_database: Any) -> None:
    await odm_database.create_collection(
        "bulk_items", validator={"$jsonSchema": {"properties": {"n": {"minimum": 0}}}}
    )
    taken = await BulkItem(name="taken", n=1).insert()
    docs = items(2600)
    docs[10] = BulkItem(id=taken.id, name="dup", n=10)
    docs[1800] = BulkItem(name="negative", n=-5)
    with pytest.raises(BulkWriteError) as info:
        await BulkItem.objects.bulk_create(docs, ordered=False)
    errors = info.value.details["writeErrors"]
    assert [(e["index"], e["code"]) for e in errors] == [(10, 11000), (1800, 121)]
    assert info.value.details["nInserted"] == 2598
    assert await odm_database["bulk_items"].count_documents({}) == 2599
    assert stored_flags(docs).count(False) == 2


# -- documents that cannot be stored ---------------------------------------------------------


async def test_an_unencodable_value_names_its_field(odm_database: Any) -> None:
    docs = items(10)
    docs[4].meta = {"big": 2**64}
    with pytest.raises(ValidationError) as info:
        await BulkItem.objects.bulk_create(docs)
    assert info.value.errors()[0]["loc"][0] == "meta"
    assert await odm_database["bulk_items"].count_documents({}) == 0  # as before: nothing
    assert not any(stored_flags(docs))


async def test_an_unencodable_value_stops_before_its_chunk(odm_database: Any) -> None:
    docs = items(2600)
    docs[1500].meta = {"a\x00b": 1}
    with pytest.raises(ValidationError) as info:
        await BulkItem.objects.bulk_create(docs)
    assert info.value.errors()[0]["loc"][0] == "meta"
    # The chunks before the culprit's went out; the culprit's and those after it did not.
    sent = chunk_start(2600, 1500)
    assert sent > 0
    assert await stored_ns(odm_database) == list(range(sent))
    assert stored_flags(docs) == [True] * sent + [False] * (2600 - sent)


@pytest.mark.odm_drivers("pymongo")
async def test_a_document_over_16mb_is_refused_with_its_chunk(odm_database: Any) -> None:
    # Named by its position, as a QueryError (a 400 in a web layer) that is still the
    # driver's DocumentTooLarge, wherever it is: first (the driver refuses it), in the middle
    # of a short list (the server refuses the message), in a later chunk.
    small = items(3)
    small[1].data = "x" * 17_000_000
    with pytest.raises(CommandTooLarge, match=r"^BulkItem bulk_create: document 1 of the 3 "
                       r"is larger than MongoDB's 16 MB limit on a document; nothing was "
                       r"inserted$"):
        await BulkItem.objects.timeout(60).bulk_create(small)
    assert await odm_database["bulk_items"].count_documents({}) == 0
    assert not any(stored_flags(small))
    first = items(3)
    first[0].data = "x" * 17_000_000
    with pytest.raises(CommandTooLarge, match=r"document 0 of the 3 .*nothing was inserted$"):
        await BulkItem.objects.timeout(60).bulk_create(first)
    assert await odm_database["bulk_items"].count_documents({}) == 0
    assert not any(stored_flags(first))
    docs = items(1500)
    docs[1300].data = "x" * 17_000_000
    sent = chunk_start(1500, 1300)
    with pytest.raises(CommandTooLarge, match=rf"document 1300 of the 1500 .*; {sent} "
                       r"documents before it were inserted \(is_stored says which\), none "
                       r"from it on$") as raised:
        await BulkItem.objects.timeout(60).bulk_create(docs)
    assert isinstance(raised.value, QueryError) and isinstance(raised.value, DocumentTooLarge)
    assert isinstance(raised.value.__cause__, OperationFailure)
    assert sent > 0
    assert await stored_ns(odm_database) == list(range(sent))
    assert stored_flags(docs) == [True] * sent + [False] * (1500 - sent)
    count = await odm_database["bulk_items"].count_documents({"data": {"$ne": ""}})
    assert count == 0


@pytest.mark.odm_drivers("pymongo")
async def test_a_document_over_16mb_in_a_transaction_leaves_nothing(
    odm_database: Any,
) -> None:
    docs = items(3)
    docs[2].data = "x" * 17_000_000
    with pytest.raises(CommandTooLarge, match=r"document 2 of the 3 .*rolled back$"):
        async with odm.transaction():
            await BulkItem.objects.timeout(60).bulk_create(docs)
    assert await odm_database["bulk_items"].count_documents({}) == 0
    assert not any(stored_flags(docs))


# -- transactions ---------------------------------------------------------------------------


async def test_in_a_transaction_that_aborts_nothing_stays(odm_database: Any) -> None:
    docs = items(2600)
    with pytest.raises(RuntimeError, match="abort"):
        async with odm.transaction():
            await BulkItem.objects.bulk_create(docs)
            assert await BulkItem.objects.count() == 2600  # visible inside
            raise RuntimeError("abort")
    assert await odm_database["bulk_items"].count_documents({}) == 0


async def test_in_a_transaction_that_commits_everything_stays(odm_database: Any) -> None:
    docs = items(2600)
    async with odm.transaction() as uow:
        await BulkItem.objects.bulk_create(docs)
        assert len(uow.identity) == 2600 and docs[2599] in uow.identity
        docs[2599].price = 7.0  # tracked: flushed at commit
    assert await stored_ns(odm_database) == list(range(2600))
    assert (await BulkItem.objects.get(n=2599)).price == 7.0


async def test_a_failure_in_a_transaction_marks_nothing_stored(odm_database: Any) -> None:
    taken = await BulkItem(name="taken", n=-1).insert()
    docs = items(2600)
    docs[2000] = BulkItem(id=taken.id, name="dup", n=2000)
    with pytest.raises(odm.DuplicateKey):
        async with odm.transaction():
            await BulkItem.objects.bulk_create(docs)
    assert not any(stored_flags(docs))
    assert await stored_ns(odm_database) == [-1]


async def test_tasks_spawned_in_a_transaction_are_refused(odm_database: Any) -> None:
    async with odm.transaction():
        with pytest.raises(odm.TransactionError, match="task that opened it"):
            await asyncio.create_task(BulkItem.objects.bulk_create(items(2600)))
    assert await odm_database["bulk_items"].count_documents({}) == 0


# -- timeout and cancellation ---------------------------------------------------------------


async def test_the_timeout_bounds_the_whole_call(odm_database: Any, failpoint: Any) -> None:
    await BulkItem(name="warm", n=-1).insert()  # the connection exists before the clock runs
    # Each chunk alone takes 0.3 s, within the 0.8 s limit; the five of them do not.
    await failpoint(5, failCommands=["insert"], blockConnection=True, blockTimeMS=300)
    docs = items(2600)
    began = time.monotonic()
    with pytest.raises(odm.OperationTimeout, match=r"BulkItem insert_many .* within 0.8 s"):
        await BulkItem.objects.timeout(0.8).bulk_create(docs)
    assert time.monotonic() - began < 1.4
    await asyncio.sleep(0.5)  # let the server finish what it was given
    stored = set(await stored_ns(odm_database))
    marked = {d.n for d in docs if d.is_stored}
    assert marked and marked <= stored and len(marked) < 2600


async def test_cancelling_leaves_no_task_behind(odm_database: Any, failpoint: Any) -> None:
    await BulkItem(name="warm", n=-1).insert()
    await failpoint(1, failCommands=["insert"], blockConnection=True, blockTimeMS=400)
    docs = items(2600)
    before = asyncio.all_tasks()
    job = asyncio.create_task(BulkItem.objects.bulk_create(docs))
    await asyncio.sleep(0.15)  # the first chunk is at the (blocked) server
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    left = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()]
    assert [t for t in left if not t.done()] == []
    await asyncio.sleep(0.6)
    assert len(await stored_ns(odm_database)) <= 1 + bulk.FIRST_CHUNK  # no chunk after it
    assert not any(stored_flags(docs))
