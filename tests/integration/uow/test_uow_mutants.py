"""Behaviours of the unit of work that mutation testing (``nox -s mutation``) found unguarded.

Each test pins what a surviving mutant of odm/uow.py, odm/journal.py, odm/models/tracking.py or
odm/models/writes.py changed (see docs/mutation-testing.md), against the real server.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import pytest
from pymongo.errors import ConfigurationError, OperationFailure, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern
from uow_support import fail_point, fail_points_off

import odm
from odm import executor, server_transactions, signals, transaction
from odm.contrib.pytest import MonitoredDatabase
from odm.models import tracking, writes
from odm.session import current_session


class MutAccount(odm.Document):
    owner: str
    balance: int = 0
    tags: list[str] = []

    class Meta:
        collection = "mut_accounts"


TRANSIENT_INSERT = {
    "failCommands": ["insert"],
    "errorCode": 112,
    "errorLabels": ["TransientTransactionError"],
}

HOOKED: list[str] = []


class MutHooked(odm.Document):
    owner: str
    balance: int = 0

    class Meta:
        collection = "mut_hooked"

    async def before_save(self) -> None:
        HOOKED.append(self.owner)


class MutDecimalKeyed(odm.Document):
    """A custom id type: a Decimal in Python, a Decimal128 in BSON."""

    id: odm.Decimal
    n: int = 0

    class Meta:
        collection = "mut_decimal_keyed"


class MutAnimal(odm.Document):
    name: str
    legs: int = 4

    class Meta:
        collection = "mut_animals"
        polymorphic = True


class MutCat(MutAnimal):
    lives: int = 9


class MutBird(MutAnimal):
    wings: int = 2


async def test_concern_objects_given_to_transaction_reach_the_server(
    odm_monitored: MonitoredDatabase,
) -> None:
    log = odm_monitored.log
    ann = await MutAccount(owner="ann").insert()
    log.clear()
    async with transaction(
        read_concern=ReadConcern("snapshot"), write_concern=WriteConcern(w="majority")
    ):
        loaded = await MutAccount.objects.get(id=ann.id)
        loaded.balance = 5
    first = log.commands[0][1]
    assert first["readConcern"]["level"] == "snapshot"
    (commit,) = log.named("commitTransaction")
    assert commit["writeConcern"]["w"] == "majority"
    assert (await MutAccount.objects.get(id=ann.id)).balance == 5


async def test_concern_names_given_to_transaction_reach_the_server(
    odm_monitored: MonitoredDatabase,
) -> None:
    log = odm_monitored.log
    ann = await MutAccount(owner="ann").insert()
    log.clear()
    async with transaction(read_concern="majority", write_concern="majority"):
        await MutAccount.objects.get(id=ann.id)
    assert log.commands[0][1]["readConcern"]["level"] == "majority"
    assert log.named("commitTransaction")[0]["writeConcern"]["w"] == "majority"


async def test_each_option_given_to_transaction_reaches_the_driver_falsy_ones_too(
    odm_monitored: MonitoredDatabase,
) -> None:
    """An option is "given" when it is not None: ``write_concern=0`` (which a transaction
    refuses) and ``max_commit_time_ms=0`` reach the driver like any other value."""
    with pytest.raises(ConfigurationError, match="unacknowledged"):
        async with transaction(write_concern=0):
            pass
    log = odm_monitored.log
    ann = await MutAccount(owner="ann").insert()
    log.clear()
    async with transaction(max_commit_time_ms=0) as uow:
        await MutAccount.objects.get(id=ann.id)
        driver_session = getattr(uow.session, "delegate", uow.session)  # Motor wraps it
        assert driver_session._transaction.opts.max_commit_time_ms == 0
    async with transaction(max_commit_time_ms=5000):
        await MutAccount.objects.get(id=ann.id)
    commits = log.named("commitTransaction")
    assert [c.get("maxTimeMS") for c in commits] == [None, 5000]


async def test_a_changed_partial_document_is_neither_flushed_nor_hooked(
    odm_database: Any,
) -> None:
    ann = await MutHooked(owner="ann", balance=100).insert()
    HOOKED.clear()
    async with transaction():
        partial = await MutHooked.objects.only("owner").get(id=ann.id)
        partial.owner = "bob"
        assert not writes.is_dirty(partial)
        assert writes.pending_update(partial) is None
    assert HOOKED == []  # before_save did not run for it
    stored = await odm_database.mut_hooked.find_one({"_id": ann.id})
    assert stored["owner"] == "ann" and stored["balance"] == 100


async def test_a_changed_whole_document_with_hooks_is_hooked_once_and_flushed(
    odm_database: Any,
) -> None:
    ann = await MutHooked(owner="ann", balance=100).insert()
    HOOKED.clear()
    async with transaction():
        loaded = await MutHooked.objects.get(id=ann.id)
        assert not writes.is_dirty(loaded)
        loaded.balance = 90
        assert writes.is_dirty(loaded)
    assert HOOKED == ["ann"]
    assert (await odm_database.mut_hooked.find_one({"_id": ann.id}))["balance"] == 90


async def test_a_custom_id_type_is_updated_in_place_not_inserted_again(
    odm_database: Any,
) -> None:
    from decimal import Decimal

    doc = await MutDecimalKeyed(id=Decimal("1.5")).insert()
    assert tracking.get_snapshot(doc) is not None
    loaded = await MutDecimalKeyed.objects.get(id=Decimal("1.5"))
    assert tracking.get_snapshot(loaded) is not None  # Decimal == the stored Decimal128
    loaded.n = 3
    await loaded.save()
    async with transaction():
        again = await MutDecimalKeyed.objects.get(id=Decimal("1.5"))
        again.n = 4
    assert await odm_database.mut_decimal_keyed.count_documents({}) == 1
    assert (await MutDecimalKeyed.objects.get(id=Decimal("1.5"))).n == 4
    moved = loaded.model_copy(update={"id": Decimal("2.5")})
    assert tracking.get_snapshot(moved) is None  # another id: a new document


async def test_a_polymorphic_family_is_flushed_in_one_bulk_write(
    odm_monitored: MonitoredDatabase,
) -> None:
    log = odm_monitored.log
    cat = await MutCat(name="tom").insert()
    bird = await MutBird(name="tweety").insert()
    log.clear()
    async with transaction():
        loaded = await MutAnimal.objects.order_by("name")
        assert [type(a) for a in loaded] == [MutCat, MutBird]
        for animal in loaded:
            animal.legs -= 1
    (update,) = log.named("update")
    assert update["update"] == "mut_animals" and len(update["updates"]) == 2
    assert (await MutAnimal.objects.get(id=cat.id)).legs == 3
    assert (await MutAnimal.objects.get(id=bird.id)).legs == 3


async def test_a_document_loaded_after_a_queryset_write_is_read_back_on_abort(
    odm_database: Any,
) -> None:
    ann = await MutAccount(owner="ann").insert()
    with pytest.raises(RuntimeError):
        async with transaction():
            await MutAccount.objects.filter(id=ann.id).update(balance=5)
            loaded = await MutAccount.objects.get(id=ann.id)  # sees the block's own write
            assert loaded.balance == 5
            raise RuntimeError("abort")
    snapshot = tracking.get_snapshot(loaded)
    assert snapshot is not None and snapshot["balance"] == 0  # what the database holds
    # balance=5 was the aborted transaction's write, not the user's: the object takes it back
    # (it used to keep it, and the next save() wrote the aborted value).
    assert loaded.balance == 0
    await loaded.save()
    assert (await MutAccount.objects.get(id=ann.id)).balance == 0


async def test_a_pre_save_receiver_alone_makes_the_flush_send_pre_save(
    odm_database: Any,
) -> None:
    seen: list[str] = []

    def receiver(sender: type[Any], document: Any, created: bool) -> None:
        seen.append(document.owner)

    ann = await MutAccount(owner="ann").insert()
    signals.pre_save.connect(receiver, MutAccount)
    try:
        async with transaction():
            loaded = await MutAccount.objects.get(id=ann.id)
            loaded.balance = 7
    finally:
        signals.pre_save.disconnect(receiver, MutAccount)
    assert seen == ["ann"]
    assert (await MutAccount.objects.get(id=ann.id)).balance == 7


async def test_run_in_transaction_inside_a_transaction_passes_every_argument(
    odm_database: Any,
) -> None:
    async def add(a: int, b: int, *, c: int = 0) -> int:
        return a + b + c

    async with transaction():
        assert await odm.run_in_transaction(add, 2, 3, c=4) == 9
    assert await odm.run_in_transaction(add, 2, 3, c=4) == 9


async def test_a_failing_robust_on_commit_callback_is_logged(
    odm_database: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def fail() -> None:
        raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger="odm.uow"):
        async with transaction() as uow:
            uow.on_commit(fail, robust=True)
    (record,) = [r for r in caplog.records if r.name == "odm.uow"]
    assert record.getMessage() == f"on_commit callback {fail!r} failed"  # named
    assert record.exc_info is not None


class MutLocked(odm.Document):
    name: str
    n: int = 0

    class Meta:
        collection = "mut_locked"
        optimistic_lock = True


async def test_a_flushed_document_deleted_meanwhile_fails_the_commit(odm_database: Any) -> None:
    ann = await MutAccount(owner="ann").insert()
    bob = await MutAccount(owner="bob").insert()
    with pytest.raises(MutAccount.DoesNotExist) as caught:
        async with transaction():
            loaded = await MutAccount.objects.order_by("owner")
            # A raw driver call in the block's session: odm does not see it (a queryset
            # delete() would read its tracked documents again).
            await executor.collection(MutAccount).delete_one(
                {"_id": ann.id}, session=current_session()
            )
            for account in loaded:
                account.balance = 1
    assert str(caught.value) == (
        "1 of 2 changed MutAccount document(s) could not be written at commit: "
        "deleted since they were loaded"
    )
    assert (await MutAccount.objects.get(id=bob.id)).balance == 0  # rolled back


async def test_a_flushed_locked_document_changed_meanwhile_is_stale(odm_database: Any) -> None:
    doc = await MutLocked(name="a").insert()
    with pytest.raises(odm.StaleDocument) as caught:
        async with transaction():
            loaded = await MutLocked.objects.get(id=doc.id)
            await executor.collection(MutLocked).update_one(  # unseen by odm, as above
                {"_id": doc.id}, {"$inc": {"version": 1}}, session=current_session()
            )
            loaded.n = 1
    assert str(caught.value) == (
        "1 of 1 changed MutLocked document(s) could not be written at commit: "
        "changed or deleted by someone else since they were loaded"
    )
    assert (await MutLocked.objects.get(id=doc.id)).n == 0


async def test_an_unknown_commit_result_is_retried_with_a_growing_back_off(
    odm_monitored: MonitoredDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each commit of unknown outcome is retried (the commit only, not the body), and the
    back-off before retry number n is drawn for attempt n, so that it grows (driver spec)."""
    attempts: list[int] = []
    real_backoff = server_transactions.backoff_delay

    def recording_backoff(attempt: int) -> float:
        attempts.append(attempt)
        return real_backoff(attempt)

    monkeypatch.setattr(server_transactions, "backoff_delay", recording_backoff)
    log = odm_monitored.log
    ann = await MutAccount(owner="ann").insert()
    # HostUnreachable at four commits: the driver retries each commit once by itself, so
    # our loop sees two commits fail with UnknownTransactionCommitResult, and the third lands.
    await fail_point(
        odm_monitored.database,
        {"failCommands": ["commitTransaction"], "errorCode": 6},
        times=4,
    )
    log.clear()
    try:
        async with transaction():
            loaded = await MutAccount.objects.get(id=ann.id)
            loaded.balance = 5
    finally:
        await fail_points_off(odm_monitored.database)
    assert len(log.named("commitTransaction")) == 5  # four failed, the last committed
    assert attempts == [1, 2]
    assert (await MutAccount.objects.get(id=ann.id)).balance == 5


def test_the_back_off_is_a_random_share_of_its_growing_bound() -> None:
    """``backoff_delay(n)`` is ``random() * min(5 ms * 1.5**n, 500 ms)``: the same draw of
    the random generator gives exactly that, so the bound grows with each attempt (and is
    reached), never shrinks."""
    state = random.getstate()
    try:
        for attempt in range(1, 20):
            random.seed(attempt)
            share = random.random()
            random.seed(attempt)
            bound = min(0.005 * 1.5**attempt, 0.5)
            assert server_transactions.backoff_delay(attempt) == share * bound
    finally:
        random.setstate(state)


async def test_by_default_a_body_is_retried_five_times(
    odm_database: Any, fail_points_off: None
) -> None:
    """``retries=5`` is the default of ``run_in_transaction`` and ``atomic``: a body that
    keeps hitting a transient error runs six times, then its error is raised."""
    runs = 0

    async def body() -> None:
        nonlocal runs
        runs += 1
        await MutAccount(owner=f"run {runs}").insert()

    await fail_point(odm_database, TRANSIENT_INSERT, times=100)
    with pytest.raises(PyMongoError) as caught:
        await odm.run_in_transaction(body)
    assert caught.value.has_error_label("TransientTransactionError")
    assert runs == 6
    runs = 0
    with pytest.raises(PyMongoError):
        await odm.atomic(body)()
    assert runs == 6
    assert await odm_database.mut_accounts.count_documents({}) == 0


async def test_a_commit_that_landed_but_reported_a_timeout_is_read_back(
    odm_monitored: MonitoredDatabase,
) -> None:
    """The server commits, then reports a write concern timeout (``MaxTimeMSExpired``): the
    outcome is unknown to the client, so the block raises, the server session is killed
    (its transaction cannot linger), and the documents are read back from the server, where
    the commit did land: their state is the committed one, not the one from before."""
    log = odm_monitored.log
    ann = await MutAccount(owner="ann").insert()
    await fail_point(
        odm_monitored.database,
        {"failCommands": ["commitTransaction"], "writeConcernError": {"code": 50, "errmsg": "x"}},
    )
    log.clear()
    try:
        with pytest.raises(PyMongoError) as caught:
            async with transaction():
                loaded = await MutAccount.objects.get(id=ann.id)
                loaded.balance = 5
    finally:
        await fail_points_off(odm_monitored.database)
    assert caught.value.has_error_label("UnknownTransactionCommitResult")
    assert log.names().count("commitTransaction") == 1  # not retried after MaxTimeMSExpired
    assert "killSessions" in log.names()
    stored = await odm_monitored.database.mut_accounts.find_one({"_id": ann.id})
    assert stored["balance"] == 5
    assert tracking.get_snapshot(loaded) == stored
    assert not writes.is_dirty(loaded)


async def test_an_inner_failure_is_named_in_the_error_of_what_follows(
    odm_database: Any,
) -> None:
    with pytest.raises(odm.TransactionError) as caught:
        async with transaction():
            with pytest.raises(ValueError):
                async with transaction():
                    raise ValueError("inner boom")
            await MutAccount(owner="ann").insert()
    assert str(caught.value) == (
        "an inner atomic block failed; the transaction was rolled back and can only be left "
        "now (the failure: ValueError: inner boom)"
    )
    assert await odm_database.mut_accounts.count_documents({}) == 0


async def test_an_interruption_during_the_abort_is_raised_once_the_abort_ended(
    odm_monitored: MonitoredDatabase,
) -> None:
    """A block fails (``ValueError``) and its task is cancelled while the abort is on the
    server: the abort runs to its end (shielded), then the cancellation is raised, from the
    block's error, and the document tells the truth."""
    log = odm_monitored.log
    database = odm_monitored.database
    ann = await MutAccount(owner="ann").insert()
    # The abort is held on the server long enough for the cancel below to land during it.
    await fail_point(
        database,
        {"failCommands": ["abortTransaction"], "blockConnection": True, "blockTimeMS": 1500},
    )
    seen: list[BaseException] = []
    held: list[MutAccount] = []

    async def body() -> None:
        try:
            async with transaction():
                loaded = await MutAccount.objects.get(id=ann.id)
                held.append(loaded)
                loaded.balance = 5
                await loaded.save()
                raise ValueError("boom")
        except BaseException as exc:
            seen.append(exc)
            raise

    log.clear()
    try:
        task = asyncio.create_task(body())
        while "abortTransaction" not in log.names() and not task.done():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await fail_points_off(database)
    (error,) = seen
    assert type(error) is asyncio.CancelledError
    assert str(error) == "cancelled while the transaction was aborted"
    assert type(error.__cause__) is ValueError and str(error.__cause__) == "boom"
    assert log.names().count("abortTransaction") == 1
    assert "killSessions" not in log.names()  # the abort completed: nothing to kill
    stored = await database.mut_accounts.find_one({"_id": ann.id})
    assert stored["balance"] == 0
    assert tracking.get_snapshot(held[0]) == stored


async def test_a_task_spawned_inside_is_told_how_to_run_its_operations(
    odm_database: Any,
) -> None:
    async with transaction():
        with pytest.raises(odm.TransactionError) as caught:
            await asyncio.gather(MutAccount.objects.count())
    assert str(caught.value).startswith("an ODM operation ran in a task spawned inside")
    assert str(caught.value).endswith(
        "await them in sequence, or give each task its own odm.transaction()"
    )


async def test_a_flush_with_nothing_tracked_writes_nothing(
    odm_monitored: MonitoredDatabase,
) -> None:
    log = odm_monitored.log
    async with transaction() as uow:
        log.clear()
        assert await uow.flush() == 0
        assert log.names() == []
        ann = await MutAccount(owner="ann").insert()
        loaded = await MutAccount.objects.get(id=ann.id)
        assert await uow.flush() == 0  # tracked, unchanged
        loaded.balance = 3
        assert await uow.flush() == 1


UNKNOWN_COMMIT = {"failCommands": ["commitTransaction"], "errorCode": 50}


async def test_a_document_inserted_by_a_commit_that_did_not_land_is_new_again(
    odm_database: Any, fail_points_off: None
) -> None:
    """The commit fails with ``MaxTimeMSExpired`` (its outcome unknown to the client; here it
    did not land): the inserted document is read back, found missing, and so is new again."""
    await fail_point(odm_database, UNKNOWN_COMMIT)
    with pytest.raises(OperationFailure) as caught:
        async with transaction():
            ann = await MutAccount(owner="ann", balance=1).insert()
    assert caught.value.code == 50
    assert caught.value.has_error_label("UnknownTransactionCommitResult")
    assert not ann.is_stored and tracking.get_snapshot(ann) is None
    await ann.insert()
    assert (await odm_database.mut_accounts.find_one({"_id": ann.id}))["balance"] == 1


async def test_when_the_read_back_fails_the_kept_states_are_put_back_with_a_warning(
    odm_database: Any, fail_points_off: None, caplog: pytest.LogCaptureFixture
) -> None:
    """A commit of unknown outcome (that did not land), and the read back fails too (with a
    timeout, which the executor raises as ``odm.OperationTimeout``): the documents get their
    state from before the block again, a warning says that their tracking state may not match
    the database, and the block's own error is the one raised."""
    ann = await MutAccount(owner="ann").insert()
    before = tracking.get_snapshot(ann)
    await fail_point(
        odm_database, {"failCommands": ["commitTransaction", "find"], "errorCode": 50}, times=2
    )
    with (
        caplog.at_level(logging.WARNING, logger="odm.uow"),
        pytest.raises(OperationFailure) as caught,
    ):
        async with transaction():
            ann.balance = 5
            await ann.save()
    assert caught.value.code == 50
    (record,) = [r for r in caplog.records if r.name == "odm.uow"]
    message = record.getMessage()
    assert message.startswith("could not read 1 MutAccount document(s) back after a failed ")
    assert "MaxTimeMSExpired" in message  # the error that stopped the read, named
    assert message.endswith("): their tracking state may not match the database")
    assert tracking.get_snapshot(ann) == before
    stored = await odm_database.mut_accounts.find_one({"_id": ann.id})
    assert stored == before and ann.balance == 5
    await ann.save()  # it differs from what is stored: the save sends it
    assert (await odm_database.mut_accounts.find_one({"_id": ann.id}))["balance"] == 5


async def test_run_in_transaction_gives_its_timeout_to_the_transaction(
    odm_database: Any, fail_points_off: None
) -> None:
    """``timeout=`` bounds the body's operations: a read held on the server for far longer
    ends in ``odm.OperationTimeout`` (not retried: it is no transient error)."""
    ann = await MutAccount(owner="ann").insert()
    await fail_point(
        odm_database,
        {"failCommands": ["find"], "blockConnection": True, "blockTimeMS": 3000},
    )
    runs = 0

    async def body() -> None:
        nonlocal runs
        runs += 1
        await MutAccount.objects.get(id=ann.id)

    with pytest.raises(odm.OperationTimeout):
        await odm.run_in_transaction(body, timeout=0.5)
    assert runs == 1


async def test_a_block_cut_off_by_its_timeout_has_its_server_session_killed(
    odm_monitored: MonitoredDatabase,
) -> None:
    """An operation cut off client-side may still run on the server, where the driver's
    abort does not reach it: after the abort, the server session is killed too."""
    log = odm_monitored.log
    ann = await MutAccount(owner="ann").insert()
    await fail_point(
        odm_monitored.database,
        {"failCommands": ["find"], "blockConnection": True, "blockTimeMS": 3000},
    )
    log.clear()
    try:
        with pytest.raises(odm.OperationTimeout):
            async with transaction(timeout=0.5):
                await MutAccount.objects.get(id=ann.id)
    finally:
        await fail_points_off(odm_monitored.database)
    names = log.names()
    assert "abortTransaction" in names and "killSessions" in names
    assert names.index("abortTransaction") < names.index("killSessions")


async def test_a_commit_past_the_block_timeout_is_named_in_the_timeout_error(
    odm_database: Any, fail_points_off: None
) -> None:
    """Under ``timeout=``, the commit runs under what is left of it: held on the server for
    longer, it ends in ``odm.OperationTimeout`` naming ``commitTransaction``."""
    await fail_point(
        odm_database,
        {"failCommands": ["commitTransaction"], "blockConnection": True, "blockTimeMS": 8000},
    )
    with pytest.raises(odm.OperationTimeout) as caught:
        async with transaction(timeout=3.0):
            await MutAccount(owner="ann").insert()
    assert str(caught.value).startswith("commitTransaction did not finish within ")
