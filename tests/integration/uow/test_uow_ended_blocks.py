"""What a unit of work does once its block has ended, and four ways a block went wrong, found
by a probe of session 17, each on both drivers:

- an ended unit of work still took work: ``on_commit`` from a running callback or after the
  block was accepted and never ran, ``flush()`` after a commit wrote outside any transaction,
  and after an abort ``flush()`` was refused as "an inner atomic block failed";
- a task spawned inside a block that ran after the block ended was refused (as a task of an
  open block, or with the inner-block message) instead of running outside any transaction;
- a ``pre_save`` receiver or a save hook running a queryset ``update()`` in a block recursed
  until a bare ``RecursionError`` (the update's autoflush ran the hooks again);
- a write the server refused in a transaction and the block caught (a duplicate key) left the
  block with a raw ``NoSuchTransaction`` labelled transient, which ``atomic`` re-ran for
  nothing;
- an ``abortTransaction`` the server refused left the transaction open, holding its locks
  until the server's lifetime limit (PyMongo ignores abort errors).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

import pymongo
import pytest
from pymongo.errors import PyMongoError
from uow_support import armed, open_transactions, stored, truthful

import odm
from odm import F, drivers, executor, signals, transaction
from odm.exceptions import OnCommitError, TransactionError
from odm.session import current_unit_of_work


class EnItem(odm.Document):
    n: int = 0

    class Meta:
        collection = "en_items"


class EnCounter(odm.Document):
    saves: int = 0

    class Meta:
        collection = "en_counters"


class EnStamped(odm.Document):
    """Its ``before_save`` stamps it and bumps its own counter with a queryset update."""

    n: int = 0
    stamp: str = ""
    saves: int = 0

    class Meta:
        collection = "en_stamped"

    async def before_save(self) -> None:
        if HOOKS_ON:
            self.stamp = "hooked"
            await EnStamped.objects.filter(id=self.id).update(saves=F("saves") + 1)


class EnUser(odm.Document):
    email: Annotated[str, odm.Indexed(unique=True)]

    class Meta:
        collection = "en_users"


HOOKS_ON = False


class Abort(Exception):
    """The block's own failure."""


# -- an ended unit of work --------------------------------------------------------------


async def test_on_commit_from_a_running_callback_runs_in_the_same_round(
    odm_database: Any,
) -> None:
    ran: list[str] = []

    def broken() -> None:
        ran.append("broken")
        raise ValueError("late and broken")

    async with transaction() as uow:
        uow.on_commit(lambda: uow.on_commit(lambda: ran.append("second")))
        uow.on_commit(lambda: ran.append("first"))
    assert ran == ["first", "second"]

    ran.clear()
    with pytest.raises(OnCommitError, match="late and broken"):
        async with transaction() as uow:
            uow.on_commit(lambda: uow.on_commit(broken))
            uow.on_commit(lambda: uow.on_commit(lambda: ran.append("robust"), robust=True))
    assert ran == ["broken", "robust"]


async def test_an_ended_unit_of_work_refuses_work(odm_database: Any) -> None:
    item = await EnItem().insert()
    async with transaction() as uow:
        held = await EnItem.objects.get(id=item.id)
    held.n = 9
    with pytest.raises(TransactionError, match=r"^the block has ended \(it committed\)"):
        await uow.flush()
    with pytest.raises(TransactionError, match=r"^the block has ended \(it committed\)"):
        uow.on_commit(lambda: None)
    assert (await stored(item)) == {"_id": item.id, "n": 0}  # nothing written outside

    with pytest.raises(Abort):
        async with transaction() as uow:
            held = await EnItem.objects.get(id=item.id)
            held.n = 7
            raise Abort("changed my mind")
    with pytest.raises(TransactionError) as caught:
        await uow.flush()
    assert str(caught.value).startswith("the block has ended (it failed: Abort: changed my mind)")
    assert "inner" not in str(caught.value)
    with pytest.raises(TransactionError, match=r"^the block has ended \(it failed"):
        uow.on_commit(lambda: None)
    assert (await stored(item)) == {"_id": item.id, "n": 0}


async def test_the_block_s_own_failure_is_not_called_an_inner_block_s(
    odm_database: Any,
) -> None:
    """A task of the block that runs while the block's own failure aborts it is refused with
    what happened."""
    gate = asyncio.Event()

    async def count() -> BaseException | int:
        await gate.wait()
        try:
            return await EnItem.objects.count()
        except TransactionError as error:
            return error

    with pytest.raises(Abort):
        async with transaction():
            await EnItem().insert()
            task = asyncio.create_task(count())
            gate.set()
            raise Abort("boom")
    refused = await task
    assert isinstance(refused, TransactionError)
    assert str(refused).startswith("the block failed (Abort: boom)"), refused


# -- tasks spawned inside a block that has ended ------------------------------------------


async def test_a_task_spawned_in_a_block_runs_outside_it_once_the_block_ended(
    odm_database: Any,
) -> None:
    async def audit(what: str, gate: asyncio.Event) -> tuple[Any, Any]:
        await gate.wait()
        await EnItem(n=len(what)).insert()
        return current_unit_of_work(), odm.current_session()

    for fails in (False, True):
        gate = asyncio.Event()
        with pytest.raises(Abort) if fails else contextlib.nullcontext():
            async with transaction():
                task = asyncio.create_task(audit("x" * (2 + fails), gate))
                if fails:
                    raise Abort
        gate.set()
        assert await task == (None, None)
    assert sorted([d.n async for d in EnItem.objects.all()]) == [2, 3]


async def test_a_task_spawned_in_a_session_block_runs_outside_it_once_it_ended(
    odm_database: Any,
) -> None:
    """It used to send its operations in the ended session (PyMongo's "Cannot use ended
    session")."""
    gate = asyncio.Event()

    async def audit() -> Any:
        await gate.wait()
        await EnItem(n=4).insert()
        return odm.current_session()

    async with odm.session():
        task = asyncio.create_task(audit())
    gate.set()
    assert await task is None
    assert await EnItem.objects.filter(n=4).count() == 1


# -- hooks whose queryset writes autoflush ------------------------------------------------


async def test_a_pre_save_receiver_s_update_runs_once_in_the_commit_flush(
    odm_monitored: Any,
) -> None:
    counter = await EnCounter().insert()
    item = await EnItem().insert()

    async def count_save(sender: Any, document: Any, created: bool) -> None:
        await EnCounter.objects.filter(id=counter.id).update(saves=F("saves") + 1)

    signals.pre_save.connect(count_save, sender=EnItem)
    try:
        odm_monitored.log.clear()
        async with transaction():
            held = await EnItem.objects.get(id=item.id)
            held.n = 2
        written = [
            c for c in odm_monitored.log.named("update") if c["update"] == "en_items"
        ]
        assert len(written) == 1
        assert (await stored(counter))["saves"] == 1
        await truthful(held, fields=True)
        assert held.n == 2
    finally:
        signals.pre_save.disconnect(count_save, sender=EnItem)


async def test_a_pre_save_receiver_s_update_in_an_explicit_save_does_not_recurse(
    odm_database: Any,
) -> None:
    counter = await EnCounter().insert()
    item = await EnItem().insert()

    async def count_save(sender: Any, document: Any, created: bool) -> None:
        await EnCounter.objects.filter(id=counter.id).update(saves=F("saves") + 1)

    signals.pre_save.connect(count_save, sender=EnItem)
    try:
        async with transaction():
            held = await EnItem.objects.get(id=item.id)
            held.n = 3
            await held.save()
        await truthful(held, fields=True)
        assert held.n == 3
        # Once: the save's own hooks ran, so the autoflush of the receiver's update did not
        # run them again.
        assert (await stored(counter))["saves"] == 1
    finally:
        signals.pre_save.disconnect(count_save, sender=EnItem)


async def test_a_before_save_hook_updating_its_own_document_keeps_every_change(
    odm_database: Any,
) -> None:
    global HOOKS_ON
    first = await EnStamped().insert()
    second = await EnStamped().insert()
    HOOKS_ON = True
    try:
        async with transaction() as uow:
            one = await EnStamped.objects.get(id=first.id)
            two = await EnStamped.objects.get(id=second.id)
            one.n, two.n = 1, 2
            assert await uow.flush() == 2
            two.n = 22
    finally:
        HOOKS_ON = False
    assert (await stored(one)) == {"_id": one.id, "n": 1, "stamp": "hooked", "saves": 1}
    assert (await stored(two)) == {"_id": two.id, "n": 22, "stamp": "hooked", "saves": 2}
    await truthful(one, fields=True)
    await truthful(two, fields=True)


# -- a write the server refused ------------------------------------------------------------


async def test_a_refused_write_caught_in_the_block_makes_it_rollback_only(
    odm_database: Any,
) -> None:
    await odm.ensure_indexes(models=[EnUser])
    await EnUser(email="a@x").insert()
    runs = 0

    @odm.atomic(retries=3)
    async def register() -> None:
        nonlocal runs
        runs += 1
        with contextlib.suppress(odm.DuplicateKey):  # "already registered: fine"
            await EnUser(email="a@x").insert()
        await EnItem().insert()

    with pytest.raises(TransactionError) as caught:
        await register()
    assert runs == 1  # not transient: the body is not run again for nothing
    message = str(caught.value)
    assert message.startswith("EnUser insert was refused by the server in this transaction")
    assert "DuplicateKeyError" in message and "email_1" in message
    assert await EnItem.objects.count() == 0

    with pytest.raises(TransactionError, match=r"^EnUser insert was refused"):
        async with transaction():
            with pytest.raises(odm.DuplicateKey) as duplicate:
                await EnUser(email="a@x").insert()
            assert any("rolled back" in n for n in _notes(duplicate.value))
    assert await EnUser.objects.count() == 1


def _notes(error: BaseException) -> list[str]:
    """The notes of ``error`` and of its causes."""
    notes: list[str] = []
    seen: BaseException | None = error
    while seen is not None:
        notes += getattr(seen, "__notes__", [])
        seen = seen.__cause__
    return notes


async def test_a_write_conflict_caught_in_the_block_stays_transient(
    odm_database: Any,
) -> None:
    item = await EnItem().insert()
    client = odm_database.client
    blocker = await drivers.start_session(client)
    await drivers.start_transaction(blocker)
    raw = executor.collection(EnItem)
    await raw.update_one({"_id": item.id}, {"$set": {"n": 100}}, session=blocker)
    runs = 0

    @odm.atomic(retries=3)
    async def bump() -> None:
        nonlocal runs
        runs += 1
        try:
            await EnItem.objects.filter(id=item.id).update(n=F("n") + 1)
        except PyMongoError as error:
            assert error.has_error_label("TransientTransactionError"), error
            await drivers.resolve(blocker.abort_transaction())
        await EnItem.objects.count()

    try:
        await bump()
    finally:
        await drivers.end_session(blocker)
    assert runs == 2
    assert (await stored(item))["n"] == 1


# -- an abort the server refused ------------------------------------------------------------


@pytest.mark.usefixtures("fail_points_off")
async def test_a_refused_abort_still_ends_the_server_transaction(
    odm_database: Any, odm_uri: str
) -> None:
    item = await EnItem().insert()
    with pytest.raises(Abort):
        async with transaction() as uow:
            session_id = uow.session.session_id
            held = await EnItem.objects.get(id=item.id)
            held.n = 1
            await held.save()
            await armed(odm_database, {"failCommands": ["abortTransaction"], "errorCode": 2})
            raise Abort
    lsid = session_id["id"].as_uuid()
    left = [op for op in await open_transactions(odm_database) if op["lsid"]["id"] == lsid]
    if left:  # end it now (the test failed): the database could not be dropped for a minute
        await odm_database.client.admin.command("killSessions", [session_id])
    assert left == []
    await truthful(held)
    # Another client (the same one would reuse the pooled server session, which ends the
    # transaction) is not held up by the document's lock.
    other: Any = pymongo.AsyncMongoClient(odm_uri)
    try:
        with pymongo.timeout(5):
            collection = other[odm_database.name][EnItem._meta.collection]
            await collection.update_one({"_id": item.id}, {"$set": {"n": 2}})
    finally:
        await other.close()
    assert (await stored(item))["n"] == 2
