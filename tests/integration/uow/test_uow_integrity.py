"""After any transaction block ends (committed, aborted, retried, nested, failed commit), every
document it touched tells the truth about the database: one test per way of ending it.

"The truth" is checked through :func:`truthful`: the object's snapshot is the stored document
(or ``None`` when nothing is stored), and its version is the stored one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

import pytest
from pymongo.errors import OperationFailure, PyMongoError
from uow_support import fail_point, open_transactions, stored, truthful

import odm
from odm import drivers, signals
from odm.session import current_unit_of_work


class IntOrder(odm.Document):
    ref: str
    status: str = "new"
    tags: list[str] = []

    class Meta:
        collection = "int_orders"


class IntPayment(odm.Document):
    ref: str
    amount: int

    class Meta:
        collection = "int_payments"


class IntLocked(odm.Document):
    name: str
    n: int = 0

    class Meta:
        collection = "int_locked"
        optimistic_lock = True


class IntGuarded(odm.Document):
    balance: int = 0
    seen: list[str] = []

    class Meta:
        collection = "int_guarded"

    async def before_save(self) -> None:
        if self.balance < 0:
            raise ValueError(f"balance {self.balance} refused")
        if "before" not in self.seen:
            self.seen.append("before")

    async def after_save(self) -> None:
        # A hook changing its own document again: the flush must write that too (in a
        # second pass, which is a save of its own: the hooks run again).
        if "after" not in self.seen:
            self.seen.append("after")


class IntOther(odm.Document):
    name: str

    class Meta:
        collection = "int_other"
        alias = "int-second"




TRANSIENT_COMMIT = {
    "failCommands": ["commitTransaction"],
    "errorCode": 112,
    "errorLabels": ["TransientTransactionError"],
}


# -- 1. abort restores the tracking state ------------------------------------------------------


async def test_a_save_in_an_aborted_block_is_sent_again_later(odm_database: Any) -> None:
    order = await IntOrder(ref="a").insert()
    with pytest.raises(RuntimeError):
        async with odm.transaction():
            order.status = "paid"
            await order.save()
            raise RuntimeError("abort")
    await truthful(order)
    assert (await stored(order) or {})["status"] == "new"
    await order.save()
    assert (await stored(order) or {})["status"] == "paid"
    await truthful(order)


async def test_a_flush_in_an_aborted_block_is_sent_again_later(odm_database: Any) -> None:
    await IntOrder(ref="b").insert()
    with pytest.raises(RuntimeError):
        async with odm.transaction() as uow:
            order = await IntOrder.objects.get(ref="b")
            order.tags.append("x")
            assert await uow.flush() == 1
            raise RuntimeError("abort")
    await truthful(order)
    await order.save()
    assert (await stored(order) or {})["tags"] == ["x"]


async def test_atomic_retry_saves_a_document_loaded_outside_the_body(
    odm_database: Any, fail_points_off: None
) -> None:
    order = await IntOrder(ref="c").insert()
    runs = 0

    @odm.atomic(retries=3)
    async def pay() -> None:
        nonlocal runs
        runs += 1
        order.status = "paid"
        await order.save()
        await IntPayment(ref="c", amount=10).insert()

    await fail_point(odm_database, TRANSIENT_COMMIT)
    await pay()
    assert runs == 2
    assert (await stored(order) or {})["status"] == "paid"
    assert await IntPayment.objects.count() == 1
    await truthful(order)


async def test_a_document_inserted_in_an_aborted_block_can_be_inserted_again(
    odm_database: Any,
) -> None:
    order = IntOrder(ref="d")
    with pytest.raises(RuntimeError):
        async with odm.transaction():
            await order.insert()
            assert order.is_stored
            raise RuntimeError("abort")
    assert not order.is_stored
    await order.save()
    await truthful(order)


async def test_a_document_deleted_in_an_aborted_block_is_still_stored(odm_database: Any) -> None:
    order = await IntOrder(ref="e").insert()
    with pytest.raises(RuntimeError):
        async with odm.transaction():
            await order.delete()
            assert not order.is_stored
            raise RuntimeError("abort")
    await truthful(order)
    order.status = "kept"
    await order.save()
    assert (await stored(order) or {})["status"] == "kept"


async def test_an_optimistic_lock_is_not_stale_after_an_aborted_write(odm_database: Any) -> None:
    locked = await IntLocked(name="l").insert()
    version = locked.version
    with pytest.raises(RuntimeError):
        async with odm.transaction():
            locked.n = 5
            await locked.save()
            assert locked.version == version + 1
            raise RuntimeError("abort")
    assert locked.version == version
    await truthful(locked)
    await locked.save()  # no StaleDocument: nobody else wrote it
    assert (await stored(locked) or {})["n"] == 5
    await truthful(locked)


async def test_changes_flushed_at_a_failed_commit_are_not_marked_clean(
    odm_database: Any, fail_points_off: None
) -> None:
    await IntOrder(ref="f").insert()
    await fail_point(odm_database, {"failCommands": ["commitTransaction"], "errorCode": 2})
    with pytest.raises(OperationFailure):
        async with odm.transaction():
            order = await IntOrder.objects.get(ref="f")
            order.status = "shipped"  # written by the flush at commit; the commit fails
    await truthful(order)
    assert (await stored(order) or {})["status"] == "new"
    await order.save()
    assert (await stored(order) or {})["status"] == "shipped"


async def test_a_commit_of_unknown_outcome_reads_the_truth_back(
    odm_database: Any, fail_points_off: None
) -> None:
    await IntOrder(ref="g").insert()
    # The client sees a network error at each commit, so it cannot know the outcome.
    await fail_point(
        odm_database,
        {"failCommands": ["commitTransaction"], "closeConnection": True},
        times=1000,
    )
    with pytest.raises((odm.OperationTimeout, PyMongoError)):
        async with odm.transaction(timeout=1.0):
            order = await IntOrder.objects.get(ref="g")
            order.status = "maybe"
    await odm_database.client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    await truthful(order)


# -- 2. a failed inner block makes the transaction rollback-only --------------------------------


async def test_a_failed_inner_block_rolls_the_whole_transaction_back(odm_database: Any) -> None:
    src = await IntLocked(name="src", n=10).insert()
    ran: list[str] = []

    @odm.atomic
    async def debit() -> None:
        src.n -= 30
        await src.save()
        current_unit_of_work().on_commit(lambda: ran.append("inner"))
        raise ValueError("insufficient funds")

    with pytest.raises(odm.TransactionError, match="inner atomic block failed"):
        async with odm.transaction() as uow:
            uow.on_commit(lambda: ran.append("outer"))
            with contextlib.suppress(ValueError):
                await debit()
            with pytest.raises(odm.TransactionError, match="inner atomic block failed"):
                await IntPayment(ref="after", amount=1).insert()
    assert ran == []
    assert (await stored(src) or {})["n"] == 10
    assert await IntPayment.objects.count() == 0
    await truthful(src)


async def test_an_outer_block_that_raises_after_an_inner_failure_keeps_its_error(
    odm_database: Any,
) -> None:
    with pytest.raises(KeyError):
        async with odm.transaction():
            try:
                async with odm.transaction():
                    await IntPayment(ref="in", amount=1).insert()
                    raise ValueError("inner")
            except ValueError:
                pass
            raise KeyError("outer")
    assert await IntPayment.objects.count() == 0


# -- 3. on_commit callbacks run once, after the commit, outside any retry -----------------------


async def test_a_failing_callback_never_reruns_a_committed_body(
    odm_database: Any, caplog: pytest.LogCaptureFixture
) -> None:
    runs = 0
    ran: list[str] = []

    def transient() -> None:
        ran.append("transient")
        raise OperationFailure("conflict", 112, {"errorLabels": ["TransientTransactionError"]})

    @odm.atomic(retries=5)
    async def pay() -> None:
        nonlocal runs
        runs += 1
        await IntPayment(ref="cb", amount=1).insert()
        uow = current_unit_of_work()
        uow.on_commit(transient)
        uow.on_commit(lambda: ran.append("robust") or 1 / 0, robust=True)
        uow.on_commit(lambda: ran.append("last"))

    with caplog.at_level(logging.ERROR, logger="odm.uow"), pytest.raises(
        odm.OnCommitError, match="committed"
    ) as raised:
        await pay()
    assert runs == 1
    assert ran == ["transient", "robust", "last"]
    assert isinstance(raised.value.__cause__, OperationFailure)
    assert not isinstance(raised.value, odm.TransactionError)
    assert "ZeroDivisionError" in caplog.text
    assert await IntPayment.objects.count() == 1


# -- 4. the flush runs the save hooks and signals -----------------------------------------------


async def test_the_flush_runs_hooks_and_signals_like_save(odm_database: Any) -> None:
    account = await IntGuarded(balance=5).insert()
    account.seen.clear()
    await account.save()
    seen_signals: list[str] = []

    async def pre(sender: Any, document: Any, created: bool) -> None:
        seen_signals.append(f"pre {created}")

    async def post(sender: Any, document: Any, created: bool) -> None:
        seen_signals.append(f"post {created}")

    signals.pre_save.connect(pre, sender=IntGuarded)
    signals.post_save.connect(post, sender=IntGuarded)
    try:
        async with odm.transaction():
            loaded = await IntGuarded.objects.get(id=account.id)
            loaded.balance = 7
        assert seen_signals == ["pre False", "post False", "pre False", "post False"]
        assert (await stored(loaded) or {})["seen"] == ["before", "after"]
        await truthful(loaded)

        with pytest.raises(ValueError, match="balance -3 refused"):
            async with odm.transaction():
                loaded = await IntGuarded.objects.get(id=account.id)
                loaded.balance = -3
        assert (await stored(loaded) or {})["balance"] == 7
        await truthful(loaded)
    finally:
        signals.pre_save.disconnect(pre, sender=IntGuarded)
        signals.post_save.disconnect(post, sender=IntGuarded)


# -- 6. a model of another alias ----------------------------------------------------------------


async def test_a_model_of_another_alias_is_refused_before_anything_is_sent(
    odm_database: Any, odm_uri: str
) -> None:
    await odm.connect(odm_uri, db=f"{odm_database.name}_second", alias="int-second")
    try:
        async with odm.transaction():
            with pytest.raises(odm.TransactionError, match=r"'int-second'.*'default'"):
                await IntOther(name="x").insert()
            await IntPayment(ref="ok", amount=1).insert()
        assert await IntOther.objects.count() == 0
        assert await IntPayment.objects.count() == 1
    finally:
        await odm.get_client("int-second").drop_database(f"{odm_database.name}_second")
        await odm.disconnect("int-second")


# -- 5. cancellation at every await point -------------------------------------------------------


async def loop_steps(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_cancelling_at_every_await_point_leaves_no_lie_and_no_open_transaction(
    odm_database: Any, odm_long: bool
) -> None:
    order = await IntOrder(ref="cancel").insert()
    callbacks: list[int] = []

    async def body(trial: int) -> None:
        async with odm.transaction() as uow:
            loaded = await IntOrder.objects.get(ref="cancel")
            assert loaded is not order  # loaded in the block: the block's own object
            order.tags.append(f"t{trial}")
            await order.save()
            await IntPayment(ref=f"p{trial}", amount=trial).insert()
            uow.on_commit(lambda: callbacks.append(trial))

    # How long one transaction takes, to cancel anywhere in it: at each of its first loop
    # steps, then at random moments over its whole length (and a little past it).
    started = time.perf_counter()
    await body(-1)
    length = time.perf_counter() - started
    callbacks.clear()
    await IntPayment.objects.delete()

    rng = random.Random(7)
    trials = 400 if odm_long else 80
    for trial in range(trials):
        task = asyncio.create_task(body(trial))
        if trial < 20:
            await loop_steps(trial)
        else:
            await asyncio.sleep(rng.uniform(0, 1.2 * length))
        task.cancel()
        if trial % 2:  # a second cancel, landing in the abort or the commit
            await loop_steps(rng.randrange(1, 30))
            task.cancel()
        outcome = await asyncio.gather(task, return_exceptions=True)
        assert outcome[0] is None or isinstance(outcome[0], asyncio.CancelledError), outcome
        committed = await IntPayment.objects.filter(ref=f"p{trial}").exists()
        assert (trial in callbacks) is committed, (trial, committed, callbacks)
        assert (f"t{trial}" in ((await stored(order)) or {})["tags"]) is committed
        await truthful(order)
        assert await open_transactions(odm_database) == [], trial
        # The next save of the object writes exactly what differs: here, the lost tag.
        await order.save()
        assert ((await stored(order)) or {})["tags"] == order.tags


async def test_a_cancel_while_the_first_command_is_on_the_server_leaves_no_transaction(
    odm_database: Any, fail_points_off: None
) -> None:
    """The command that starts the server transaction is cut off client-side: the driver's
    abort does not know of it, so the block kills the server session."""
    await IntOrder(ref="slow").insert()
    await fail_point(
        odm_database,
        {"failCommands": ["find"], "blockConnection": True, "blockTimeMS": 400},
    )

    async def body() -> None:
        async with odm.transaction():
            await IntOrder.objects.get(ref="slow")

    task = asyncio.create_task(body())
    await asyncio.sleep(0.15)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.5)  # past the blocked command's end
    assert await open_transactions(odm_database) == []


async def test_a_document_loaded_after_the_block_wrote_is_read_back_on_abort(
    odm_database: Any,
) -> None:
    """Loaded after the transaction's own write, it was loaded with that write: after the
    abort its snapshot is read back from the server."""
    order = await IntOrder(ref="h").insert()
    with pytest.raises(RuntimeError):
        async with odm.transaction():
            order.status = "paid"
            await order.save()  # an instance write: `order` is not in the identity map
            again = await IntOrder.objects.filter(id=order.id).first()
            assert again is not None and again is not order
            assert again.status == "paid"
            raise RuntimeError("abort")
    await truthful(order)
    await truthful(again)
    again.status = "paid"
    await again.save()
    assert (await stored(again) or {})["status"] == "paid"


async def test_copies_saved_in_an_aborted_block_leave_the_others_truthful(
    odm_database: Any,
) -> None:
    order = await IntOrder(ref="copy", tags=["a"]).insert()
    twin = order.model_copy()
    with pytest.raises(RuntimeError):
        async with odm.transaction():
            twin.tags.append("b")  # shared list: both objects see it
            await twin.save()
            raise RuntimeError("abort")
    await truthful(order)
    await order.save()  # the append never landed: this save must send it
    assert (await stored(order) or {})["tags"] == ["a", "b"]
    await twin.save()
    assert (await stored(twin) or {})["tags"] == ["a", "b"]


async def test_a_session_end_cut_off_after_the_commit_leaves_the_documents_as_committed(
    odm_database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit's task also ends the session. A cancellation that reaches that task during
    the session end (its event loop closing; Motor ends sessions in a thread) is no failure of
    the commit: nothing is restored, the end is tried again as the block is left, and only
    when that is cut off too does the block raise, its documents read back, as committed."""
    real_end = drivers.end_session
    cuts = [1]

    async def end_session(session: Any) -> None:
        if cuts[0]:
            cuts[0] -= 1
            raise asyncio.CancelledError("the loop closes")
        await real_end(session)

    monkeypatch.setattr(drivers, "end_session", end_session)
    first = IntOrder(ref="first")
    async with odm.transaction() as uow:
        await first.insert()
    assert cuts == [0] and uow.session.has_ended
    await truthful(first)
    assert first.is_stored

    cuts[0] = 2
    second = IntOrder(ref="second")
    with pytest.raises(asyncio.CancelledError):
        async with odm.transaction() as uow:
            await second.insert()
    assert cuts == [0]
    monkeypatch.setattr(drivers, "end_session", real_end)
    await real_end(uow.session)
    await truthful(second)
    assert second.is_stored
