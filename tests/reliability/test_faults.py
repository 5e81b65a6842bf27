"""Fault injection with the ``failCommand`` fail point on the plugin's single-node replica set.

Every fault ends in one of two ways: a retried success whose effect is applied exactly once, or
a clear typed error with nothing (half-)written. Each test switches the fail point off after
itself (``fail_points_off``) and records its outcome for docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import pytest
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

import odm
from odm.aggregates import Sum
from odm.document import Document
from odm.models.fields import Indexed
from odm.query.expressions import F

Recorder = Callable[..., None]
pytestmark = pytest.mark.odm_drivers("pymongo")


class FItem(Document):
    key: Annotated[str, Indexed(unique=True)]
    n: int = 0
    log: list[str] = []

    class Meta:
        collection = "rel_fault_items"


async def fail(db: Any, commands: list[str], times: int = 1, **data: Any) -> None:
    """Arm ``failCommand`` for the next ``times`` matching commands."""
    await db.client.admin.command(
        {
            "configureFailPoint": "failCommand",
            "mode": {"times": times},
            "data": {"failCommands": commands, **data},
        }
    )


@pytest.fixture
async def db(odm_database: Any) -> AsyncIterator[Any]:
    """The fresh database with the collection and its unique index made up front."""
    odm.connection.get_connection().models.append(FItem)
    odm.connection._model_aliases[FItem] = "default"
    await odm_database.create_collection("rel_fault_items")
    await odm.ensure_indexes()
    try:
        yield odm_database
    finally:
        await odm_database.client.admin.command(
            {"configureFailPoint": "failCommand", "mode": "off"}
        )


async def stored(key: str | None = None) -> list[dict[str, Any]]:
    """The raw stored items (all, or those with ``key``), read outside any fault."""
    coll = odm.get_database()["rel_fault_items"]
    return [d async for d in coll.find({} if key is None else {"key": key})]


NETWORK = {"closeConnection": True}
NOT_PRIMARY = {"errorCode": 10107, "errorLabels": ["RetryableWriteError"]}  # NotWritablePrimary
TRANSIENT = {"errorCode": 112, "errorLabels": ["TransientTransactionError"]}  # WriteConflict


# -- retryable writes and reads: a retried success, exactly once ----------------------------


@pytest.mark.parametrize("fault", [NETWORK, NOT_PRIMARY], ids=["network", "not_primary"])
async def test_insert_is_retried_once_and_applied_once(
    db: Any, fault: dict[str, Any], figures: Recorder
) -> None:
    await fail(db, ["insert"], **fault)
    await FItem(key="a").insert(timeout=10)
    assert len(await stored("a")) == 1
    name = "network error" if fault is NETWORK else "NotWritablePrimary"
    figures("faults", **{f"insert, {name}": "retried, applied once"})


async def test_save_push_is_retried_and_applied_once(db: Any, figures: Recorder) -> None:
    item = await FItem(key="s").insert()
    item.log.append("op-1")  # save() sends {"$push": {"log": {"$each": ["op-1"]}}}
    await fail(db, ["update"], **NETWORK)
    await item.save(timeout=10)
    assert [d["log"] for d in await stored("s")] == [["op-1"]]
    figures("faults", **{"save() ($push), network error": "retried, applied once"})


async def test_bulk_create_is_retried_and_applied_once(db: Any, figures: Recorder) -> None:
    await fail(db, ["insert"], **NETWORK)
    await FItem.objects.bulk_create([FItem(key=f"b{i}") for i in range(500)])
    docs = await stored()
    assert len(docs) == 500 and len({d["key"] for d in docs}) == 500
    figures("faults", **{"bulk_create (500), network error": "retried, applied once"})


async def test_queryset_update_is_not_retried_and_not_applied(db: Any, figures: Recorder) -> None:
    """update_many is not a retryable write (MongoDB's rule): the error reaches the caller,
    and the fail point fires before the command runs, so nothing was written."""
    await FItem(key="u").insert()
    await fail(db, ["update"], **NETWORK)
    with pytest.raises(ConnectionFailure):
        await FItem.objects.filter(key="u").update(n=F("n") + 1, log=F("log").push("x"))
    assert [(d["n"], d["log"]) for d in await stored("u")] == [(0, [])]
    # The caller may retry: it is then applied once.
    assert await FItem.objects.filter(key="u").update(n=F("n") + 1, log=F("log").push("x")) == 1
    assert [(d["n"], d["log"]) for d in await stored("u")] == [(1, ["x"])]
    figures("faults", **{"QuerySet.update (update_many), network error":
                         "AutoReconnect raised (not retryable), nothing written"})


async def test_queryset_write_on_one_id_is_retried_and_applied_once(
    db: Any, figures: Recorder
) -> None:
    """filter(id=x).update() / .delete() can match one document: they are sent as update_one /
    delete_one, which the driver retries after a network error; the server applies them once."""
    item = await FItem(key="one").insert()
    await fail(db, ["update"], **NETWORK)
    assert await FItem.objects.filter(id=item.id).update(n=F("n") + 1, log=F("log").push("x")) == 1
    assert [(d["n"], d["log"]) for d in await stored("one")] == [(1, ["x"])]
    await fail(db, ["delete"], **NETWORK)
    assert await FItem.objects.filter(id=item.id).delete() == 1
    assert await stored("one") == []
    figures("faults", **{"QuerySet.update / delete on one id, network error":
                         "retried (update_one / delete_one), applied once"})


@pytest.mark.parametrize("command", ["find", "aggregate"])
async def test_reads_are_retried(db: Any, command: str, figures: Recorder) -> None:
    await FItem.objects.bulk_create([FItem(key=f"r{i}", n=i) for i in range(10)])
    await fail(db, [command], **NETWORK)
    if command == "find":
        assert (await FItem.objects.get(key="r3")).n == 3
    else:
        assert (await FItem.objects.aggregate(total=Sum("n")))["total"] == 45
    figures("faults", **{f"{command}, network error": "retried, correct result"})


# -- timeouts: a typed error, nothing written -----------------------------------------------


@pytest.mark.parametrize("command", ["insert", "find", "aggregate", "update"])
async def test_block_past_timeout_is_operation_timeout(
    db: Any, command: str, figures: Recorder
) -> None:
    await FItem(key="t", n=1).insert()
    await fail(db, [command], blockConnection=True, blockTimeMS=1200)
    began = time.monotonic()
    with pytest.raises(odm.OperationTimeout, match=r"did not finish within 0\.3 s"):
        if command == "insert":
            await FItem(key="t2").insert(timeout=0.3)
        elif command == "find":
            await FItem.objects.filter(key="t").timeout(0.3)
        elif command == "aggregate":
            await FItem.objects.timeout(0.3).aggregate(total=Sum("n"))
        else:
            await FItem.objects.filter(key="t").timeout(0.3).update(n=F("n") + 1)
    took = time.monotonic() - began
    assert took < 1.1, f"the timeout fired after {took:.2f} s, not 0.3 s"
    await asyncio.sleep(1.3)  # let the blocked command reach the server's own deadline check
    # The server got maxTimeMS with the command: the blocked write was not applied.
    assert [(d["key"], d["n"]) for d in await stored()] == [("t", 1)]
    figures("faults", **{f"{command}, blocked 1.2 s past timeout=0.3":
                         "odm.OperationTimeout after 0.3 s, nothing written"})


# -- transactions ---------------------------------------------------------------------------


async def test_atomic_reruns_on_transient_error_and_applies_once(
    db: Any, figures: Recorder
) -> None:
    runs = 0

    @odm.atomic(retries=3)
    async def body() -> None:
        nonlocal runs
        runs += 1
        await FItem(key="x1").insert()
        await FItem.objects.filter(key="x1").update(n=F("n") + 1, log=F("log").push("op"))

    await fail(db, ["update"], times=2, **TRANSIENT)
    await body()
    assert runs == 3
    assert [(d["n"], d["log"]) for d in await stored()] == [(1, ["op"])]
    figures("faults", **{"update in @atomic, TransientTransactionError x2":
                         "body re-run, applied once"})


async def test_network_error_inside_atomic_reruns_and_applies_once(
    db: Any, figures: Recorder
) -> None:
    runs = 0

    @odm.atomic(retries=3)
    async def body() -> None:
        nonlocal runs
        runs += 1
        await FItem(key="x2").insert()
        await FItem(key="x3").insert()

    # Fail the second insert of the first run: the first one must be rolled back with it.
    await db.client.admin.command(
        {
            "configureFailPoint": "failCommand",
            "mode": {"skip": 1},
            "data": {"failCommands": ["insert"], **NETWORK},
        }
    )
    try:
        with pytest.raises(PyMongoError):
            await body()  # every insert after the first fails: retries run out
    finally:
        await db.client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    assert await stored() == [], "a half-done transaction was written"
    runs = 0
    await fail(db, ["insert"], times=1, **NETWORK)
    await body()
    assert runs == 2
    assert sorted(d["key"] for d in await stored()) == ["x2", "x3"]
    figures("faults", **{"insert in @atomic, network error": "body re-run, applied once; "
                         "retries exhausted: typed driver error, nothing written"})


async def test_transaction_without_retry_aborts_whole(db: Any, figures: Recorder) -> None:
    await fail(db, ["update"], **TRANSIENT)
    with pytest.raises(OperationFailure) as caught:
        async with odm.transaction():
            await FItem(key="p").insert()
            await FItem.objects.filter(key="p").update(n=5)
    assert caught.value.has_error_label("TransientTransactionError")
    assert await stored() == []
    figures("faults", **{"update in transaction() (no re-run), TransientTransactionError":
                         "raised with its label, nothing written"})


@pytest.mark.parametrize("fault", ["network", "unknown_result"])
async def test_commit_is_retried_and_applied_once(
    db: Any, fault: str, figures: Recorder
) -> None:
    if fault == "network":
        # Three failures: the driver retries the commit once, then the ODM's loop goes on.
        await fail(db, ["commitTransaction"], times=3, **NETWORK)
    else:
        await fail(
            db, ["commitTransaction"], times=3, errorCode=6,  # HostUnreachable
            errorLabels=["RetryableWriteError", "UnknownTransactionCommitResult"],
        )
    async with odm.transaction():
        await FItem(key="c").insert()
        await FItem.objects.filter(key="c").update(log=F("log").push("once"))
    assert [d["log"] for d in await stored()] == [["once"]]
    label = "network error x3" if fault == "network" else "UnknownTransactionCommitResult x3"
    figures("faults", **{f"commitTransaction, {label}": "commit retried, applied once"})


async def test_commit_failing_for_good_writes_nothing(db: Any, figures: Recorder) -> None:
    await fail(db, ["commitTransaction"], errorCode=251, errorLabels=["TransientTransactionError"])
    with pytest.raises(OperationFailure):
        async with odm.transaction():
            await FItem(key="d").insert()
    assert await stored() == []

    runs = 0

    @odm.atomic(retries=2)
    async def body() -> None:
        nonlocal runs
        runs += 1
        await FItem(key="d").insert()

    await fail(db, ["commitTransaction"], errorCode=251, errorLabels=["TransientTransactionError"])
    await body()
    assert runs == 2 and len(await stored()) == 1
    figures("faults", **{"commitTransaction, TransientTransactionError":
                         "transaction(): raised, nothing written; @atomic: re-run, applied once"})


async def test_commit_blocked_past_transaction_timeout_is_operation_timeout(
    db: Any, figures: Recorder
) -> None:
    figures("faults", **{"commitTransaction, blocked 4 s past transaction(timeout=1)":
                         "odm.OperationTimeout within 1 s (a timed-out commit's outcome "
                         "is unknown, as the driver spec says)"})
    await fail(db, ["commitTransaction"], blockConnection=True, blockTimeMS=4000)
    began = time.monotonic()
    with pytest.raises(odm.OperationTimeout):
        async with odm.transaction(timeout=1.0) as uow:
            lsid = uow.session.session_id
            await FItem(key="e").insert()
    assert time.monotonic() - began < 2.5
    # The server's transaction is not left holding its locks until its lifetime limit.
    cursor = await db.client.admin.aggregate([
        {"$currentOp": {"idleSessions": True, "allUsers": True}},
        {"$match": {"lsid.id": lsid["id"], "transaction": {"$exists": True}}},
    ])
    assert await cursor.to_list(None) == []
