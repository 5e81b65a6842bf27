"""odm.transaction(), atomic and run_in_transaction on a real replica set, driver-level writes.

These tests write through the driver with the bound session (``odm.current_session()``), so they
exercise the unit of work itself; the Document-level tests live beside them.
"""

import asyncio
import contextvars
from typing import Any

import pytest
from pymongo.errors import OperationFailure
from uow_support import concurrent_transfers, fail_point, gave_up

import odm
from odm import drivers
from odm.blocks import atomic, run_in_transaction, transaction
from odm.server import LocalServer
from odm.server_transactions import backoff_delay
from odm.session import current_session, current_unit_of_work, operation_session


async def insert(db: Any, doc: dict[str, Any]) -> None:
    await db.items.insert_one(doc, session=current_session())


async def count_outside(db: Any) -> int:
    return int(await db.items.count_documents({}))


async def test_commit_writes_and_outside_readers_do_not_see_until_then(odm_database: Any) -> None:
    async with transaction() as uow:
        await insert(odm_database, {"n": 1})
        inside = await odm_database.items.count_documents({}, session=current_session())
        # A task with an empty context stands for another request: it has no bound session.
        outside = await asyncio.create_task(
            count_outside(odm_database), context=contextvars.Context()
        )
        assert uow.session is current_session()
    assert (inside, outside) == (1, 0)
    assert await odm_database.items.count_documents({}) == 1
    assert current_session() is None


async def test_the_session_is_ended_when_the_block_is_left(odm_database: Any) -> None:
    async with transaction() as uow:
        await insert(odm_database, {"n": 1})
    assert uow.session.has_ended
    with pytest.raises(RuntimeError):
        async with transaction() as failed:
            await insert(odm_database, {"n": 2})
            raise RuntimeError("abort")
    assert failed.session.has_ended
    assert await odm_database.items.count_documents({}) == 1


async def test_a_session_end_that_fails_after_the_commit_is_tried_again_and_never_undoes_it(
    odm_database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a commit the session is ended in the commit's own task; if that fails, it is
    tried again as the block is left, and only a failure there too reaches the caller. The
    commit stands either way."""
    real_end = drivers.end_session
    failures = [1]

    async def end_session(session: Any) -> None:
        if failures[0]:
            failures[0] -= 1
            raise RuntimeError("the session end failed")
        await real_end(session)

    monkeypatch.setattr(drivers, "end_session", end_session)
    ran: list[str] = []
    async with transaction() as uow:
        await insert(odm_database, {"n": 1})
        uow.on_commit(lambda: ran.append("first"))
    assert uow.session.has_ended and ran == ["first"]

    failures[0] = 2
    with pytest.raises(RuntimeError, match="the session end failed"):
        async with transaction() as uow:
            await insert(odm_database, {"n": 2})
    assert failures == [0]
    assert await odm_database.items.count_documents({}) == 2
    monkeypatch.setattr(drivers, "end_session", real_end)
    await real_end(uow.session)


async def test_exception_aborts_and_propagates(odm_database: Any) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with transaction():
            await insert(odm_database, {"n": 1})
            raise RuntimeError("boom")
    assert await odm_database.items.count_documents({}) == 0


@pytest.mark.odm_drivers("pymongo")
async def test_raw_driver_calls_join_through_bind(odm_database: Any) -> None:
    """With PyMongo >= 4.17 a raw call with no session= joins the transaction."""
    with pytest.raises(RuntimeError):
        async with transaction():
            await odm_database.items.insert_one({"raw": True})
            raise RuntimeError("abort")
    assert await odm_database.items.count_documents({}) == 0


async def test_on_commit_runs_after_commit_in_order_and_is_dropped_on_abort(
    odm_database: Any,
) -> None:
    seen: list[str] = []

    async def async_callback() -> None:
        seen.append(f"async saw {await odm_database.items.count_documents({})}")

    async with transaction() as uow:
        await insert(odm_database, {"n": 1})
        uow.on_commit(lambda: seen.append("sync"))
        uow.on_commit(async_callback)
        seen.append("body done")
    assert seen == ["body done", "sync", "async saw 1"]

    seen.clear()
    with pytest.raises(ValueError):
        async with transaction() as uow:
            uow.on_commit(lambda: seen.append("must not run"))
            raise ValueError
    assert seen == []


async def test_nested_transaction_joins_the_outer_one(odm_database: Any) -> None:
    with pytest.raises(RuntimeError):
        async with transaction() as outer:
            async with transaction() as inner:
                assert inner is outer
                await insert(odm_database, {"n": 1})
            raise RuntimeError("abort outer")
    assert await odm_database.items.count_documents({}) == 0


async def test_tasks_spawned_inside_are_refused(odm_database: Any) -> None:
    async def spawned() -> None:
        operation_session()

    async with transaction():
        assert operation_session() is current_session()
        with pytest.raises(odm.TransactionError, match="task that opened it"):
            await asyncio.gather(spawned())


async def test_tasks_started_outside_do_not_see_the_transaction(odm_database: Any) -> None:
    entered = asyncio.Event()
    release = asyncio.Event()
    seen: list[Any] = []

    async def outsider() -> None:
        await entered.wait()
        seen.append(current_unit_of_work())
        release.set()

    task = asyncio.create_task(outsider())
    async with transaction():
        entered.set()
        await release.wait()
    await task
    assert seen == [None]


async def test_atomic_reruns_body_on_transient_error(
    odm_database: Any, fail_points_off: None
) -> None:
    runs = 0

    @atomic(retries=3)
    async def body() -> str:
        nonlocal runs
        runs += 1
        await insert(odm_database, {"run": runs})
        return "done"

    await fail_point(
        odm_database,
        {
            "failCommands": ["insert"],
            "errorCode": 251,
            "errorLabels": ["TransientTransactionError"],
        },
    )
    assert await body() == "done"
    assert runs == 2
    assert [d["run"] async for d in odm_database.items.find({}, {"_id": 0})] == [2]


async def test_unknown_commit_result_retries_the_commit_only(
    odm_database: Any, fail_points_off: None
) -> None:
    runs = 0

    async def body() -> None:
        nonlocal runs
        runs += 1
        await insert(odm_database, {"n": runs})

    # Two failures: the driver retries a commit once by itself, so the second one reaches
    # our loop, which must retry the commit and not the body.
    await fail_point(
        odm_database,
        {"failCommands": ["commitTransaction"], "errorCode": 6},
        times=2,
    )
    await run_in_transaction(body, retries=3)
    assert runs == 1
    assert await odm_database.items.count_documents({}) == 1


async def test_non_retryable_error_aborts_cleanly(
    odm_database: Any, fail_points_off: None
) -> None:
    runs = 0

    @atomic(retries=5)
    async def body() -> None:
        nonlocal runs
        runs += 1
        await insert(odm_database, {"first": True})
        await insert(odm_database, {"second": True})

    await fail_point(odm_database, {"failCommands": ["insert"], "errorCode": 2}, times=1)
    with pytest.raises(OperationFailure):
        await body()
    assert runs == 1
    assert await odm_database.items.count_documents({}) == 0


async def test_concurrent_transfers_keep_the_total_exact(odm_database: Any, odm_long: bool) -> None:
    load = concurrent_transfers(odm_long)
    accounts = load.accounts
    await odm_database.accounts.insert_many([{"_id": i, "balance": 1000} for i in range(accounts)])

    @atomic(retries=50, timeout=60)
    async def transfer(src: int, dst: int, amount: int) -> None:
        session = current_session()
        await odm_database.accounts.update_one(
            {"_id": src}, {"$inc": {"balance": -amount}}, session=session
        )
        await odm_database.accounts.update_one(
            {"_id": dst}, {"$inc": {"balance": amount}}, session=session
        )

    results = await asyncio.gather(
        *(
            transfer(i % accounts, (i * 3 + 1) % accounts, 1 + i % 7)
            for i in range(load.transfers)
        ),
        return_exceptions=True,
    )
    gave_up(results)  # the total stays exact all the same
    total = 0
    async for account in odm_database.accounts.find({}):
        total += account["balance"]
    assert total == accounts * 1000


def test_backoff_follows_the_spec() -> None:
    for attempt in range(1, 20):
        assert 0 <= backoff_delay(attempt) <= min(0.005 * 1.5**attempt, 0.5)


async def test_standalone_server_refuses_transactions_before_writing() -> None:
    async with LocalServer(replica_set=None) as server:
        await odm.connect(server.uri_for("solo"), alias="solo")
        try:
            with pytest.raises(odm.TransactionsNotSupported) as caught:
                async with transaction("solo"):
                    pytest.fail("the body must not run")
            assert str(caught.value) == (
                "this MongoDB server is a standalone mongod, which cannot run multi-document "
                "transactions; run it as a replica set (even a single-node one: `odm server`, "
                "or mongod --replSet rs0 then rs.initiate()) or use the writes without "
                "transaction()"
            )
            assert await odm.get_database("solo").items.count_documents({}) == 0
        finally:
            await odm.disconnect("solo")


async def test_the_blocks_own_error_leaves_it_unchanged(odm_database: Any) -> None:
    """The error that ends a block is the one the caller sees: the same object, its traceback
    starting where it was raised (a StopIteration too, which a coroutine re-raising it would
    turn into a RuntimeError), and the transaction is aborted."""

    def first_of(items: list[int]) -> int:
        return next(iter(items))

    for error in (KeyError("k"), StopIteration(), ValueError("v")):
        with pytest.raises(type(error)) as raised:
            async with transaction():
                await insert(odm_database, {"n": 1})
                if isinstance(error, StopIteration):
                    first_of([])
                raise error
        if not isinstance(error, StopIteration):
            assert raised.value is error
        assert raised.value.__cause__ is None
        frames = [entry.name for entry in raised.traceback]
        assert "__aexit__" not in frames
    assert await odm_database.items.count_documents({}) == 0


async def test_one_block_object_serves_one_block_at_a_time(odm_database: Any) -> None:
    block = transaction()
    async with block:
        with pytest.raises(RuntimeError, match="in use by another block"):
            async with block:
                pass
        await insert(odm_database, {"n": 1})
    async with block:  # free again once left
        await insert(odm_database, {"n": 2})
    assert await odm_database.items.count_documents({}) == 2


async def test_as_a_decorator_each_call_is_a_transaction_of_its_own(odm_database: Any) -> None:
    @transaction()
    async def add(n: int, fail: bool = False) -> int:
        await insert(odm_database, {"n": n})
        assert current_unit_of_work() is not None
        if fail:
            raise RuntimeError("abort")
        return n

    assert await add(1) == 1
    with pytest.raises(RuntimeError):
        await add(2, fail=True)
    assert await asyncio.gather(add(3), add(4)) == [3, 4]
    assert sorted([d["n"] async for d in odm_database.items.find({})]) == [1, 3, 4]
    assert current_unit_of_work() is None
