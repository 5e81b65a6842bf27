"""The unit of work with Documents and QuerySets: every operation joins the transaction."""

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pymongo.errors import OperationFailure, PyMongoError
from uow_support import concurrent_transfers, gave_up

import odm
from odm import F, transaction
from odm.contrib.pytest import MonitoredDatabase


class UowAccount(odm.Document):
    owner: str
    balance: int = 0
    tags: list[str] = []

    class Meta:
        collection = "uow_accounts"


class UowLocked(odm.Document):
    name: str
    n: int = 0

    class Meta:
        collection = "uow_locked"
        optimistic_lock = True


class UowEntry(odm.Document):
    account: odm.Reference[UowAccount]
    amount: int

    class Meta:
        collection = "uow_entries"


async def outside(fn: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``fn`` as another request would: in a task with an empty context."""

    async def run() -> Any:
        return await fn()

    return await asyncio.create_task(run(), context=contextvars.Context())


async def seed() -> UowAccount:
    return await UowAccount(owner="ann", balance=100).insert()


async def stored(db: Any) -> list[tuple[str, int]]:
    return sorted([(d["owner"], d["balance"]) async for d in db.uow_accounts.find()])


Operation = Callable[[UowAccount], Awaitable[Any]]


async def op_insert(ann: UowAccount) -> None:
    await UowAccount(owner="new").insert()


async def op_save(ann: UowAccount) -> None:
    ann.balance = 1
    await ann.save()


async def op_update(ann: UowAccount) -> None:
    await UowAccount.objects.filter(owner="ann").update(balance=F("balance") + 5)


async def op_delete(ann: UowAccount) -> None:
    await ann.delete()


async def op_queryset_delete(ann: UowAccount) -> None:
    await UowAccount.objects.filter(owner="ann").delete()


async def op_bulk_create(ann: UowAccount) -> None:
    await UowAccount.objects.bulk_create([UowAccount(owner=f"b{i}") for i in range(3)])


async def op_get_or_create(ann: UowAccount) -> None:
    _, created = await UowAccount.objects.get_or_create(owner="goc", defaults={"balance": 3})
    assert created


async def op_tracked_change(ann: UowAccount) -> None:
    loaded = await UowAccount.objects.get(owner="ann")
    loaded.balance = 999  # no save(): flushed at commit, which the exception prevents


@pytest.mark.parametrize(
    "operation",
    [op_insert, op_save, op_update, op_delete, op_queryset_delete, op_bulk_create,
     op_get_or_create, op_tracked_change],
    ids=lambda f: f.__name__,
)
async def test_every_operation_rolls_back(odm_database: Any, operation: Operation) -> None:
    ann = await seed()
    before = await stored(odm_database)
    with pytest.raises(RuntimeError, match="abort"):
        async with transaction():
            inside_ann = await UowAccount.objects.get(id=ann.id)
            await operation(inside_ann)
            raise RuntimeError("abort")
    after = await stored(odm_database)
    assert after == before


async def test_reads_inside_see_own_writes_outside_readers_do_not(odm_database: Any) -> None:
    async with transaction():
        await UowAccount(owner="zed", balance=7).insert()
        inside = await UowAccount.objects.filter(owner="zed").count()
        seen_outside = await outside(UowAccount.objects.filter(owner="zed").count)
        entries = await UowEntry.objects.select_related("account").filter(account__owner="zed")
        assert entries == []
    assert (inside, seen_outside) == (1, 0)
    assert await UowAccount.objects.filter(owner="zed").count() == 1


async def test_select_related_and_refresh_inside_use_the_session(odm_database: Any) -> None:
    async with transaction():
        zed = await UowAccount(owner="zed").insert()
        await UowEntry(account=zed, amount=3).insert()
        [entry] = await UowEntry.objects.select_related("account").filter(account__owner="zed")
        assert entry.account.document is zed  # the identity map's object
        await UowAccount.objects.filter(id=zed.id).update(balance=42)
        await zed.refresh()
        assert zed.balance == 42


async def test_identity_map_gives_one_object_per_id(odm_database: Any) -> None:
    ann = await seed()
    async with transaction():
        first = await UowAccount.objects.get(id=ann.id)
        again = await UowAccount.objects.get(owner="ann")
        listed = await UowAccount.objects.filter(balance__gte=0)
        assert first is again is listed[0]
        first.balance = 5
        assert (await UowAccount.objects.first()) is first
        assert first.balance == 5  # not overwritten by the fresh load
    outside_copy = await UowAccount.objects.get(id=ann.id)
    assert outside_copy is not first


async def test_flush_at_commit_sends_only_changed_fields_one_bulk_write_per_collection(
    odm_monitored: MonitoredDatabase,
) -> None:
    log = odm_monitored.log
    a = await UowAccount(owner="a", balance=1, tags=["x"]).insert()
    b = await UowAccount(owner="b", balance=2).insert()
    c = await UowLocked(name="c").insert()
    log.clear()
    async with transaction():
        loaded_a, loaded_b = await UowAccount.objects.order_by("owner")
        loaded_c = await UowLocked.objects.get(id=c.id)
        loaded_a.balance = 10
        loaded_b.tags = [*loaded_b.tags, "vip"]
        loaded_c.n = 1
    updates = log.named("update")
    assert len(updates) == 2  # one bulk write per collection
    by_collection = {cmd["update"]: cmd["updates"] for cmd in updates}
    assert [u["u"] for u in by_collection["uow_accounts"]] == [
        {"$set": {"balance": 10}},
        {"$push": {"tags": {"$each": ["vip"]}}},
    ]
    assert all("lsid" in cmd and "txnNumber" in cmd for cmd in updates)
    assert log.names()[-1] == "commitTransaction"
    assert (await UowAccount.objects.get(id=a.id)).balance == 10
    assert (await UowAccount.objects.get(id=b.id)).tags == ["vip"]
    assert (await UowLocked.objects.get(id=c.id)).n == 1


async def test_concurrent_change_to_a_tracked_document_aborts_or_retries(
    odm_database: Any,
) -> None:
    """Snapshot isolation catches the conflict (WriteConflict, a TransientTransactionError):
    the plain block aborts with nothing written; ``atomic`` re-runs the body on fresh data."""
    doc = await UowLocked(name="x").insert()
    with pytest.raises(OperationFailure) as info:
        async with transaction():
            mine = await UowLocked.objects.get(id=doc.id)
            await outside(lambda: UowLocked.objects.filter(id=doc.id).update(n=5))
            mine.n = 1
            await UowAccount(owner="also rolled back").insert()
    assert info.value.has_error_label("TransientTransactionError")
    assert (await UowLocked.objects.get(id=doc.id)).n == 5
    assert await UowAccount.objects.count() == 0

    runs = 0

    @odm.atomic(retries=3)
    async def bump() -> None:
        nonlocal runs
        runs += 1
        mine = await UowLocked.objects.get(id=doc.id)
        if runs == 1:
            await outside(lambda: UowLocked.objects.filter(id=doc.id).update(n=F("n") + 1))
        mine.n += 10

    await bump()
    assert runs == 2
    final = await UowLocked.objects.get(id=doc.id)
    assert (final.n, final.version) == (16, 3)


async def test_gather_inside_a_transaction_is_refused(odm_database: Any) -> None:
    await seed()
    with pytest.raises(odm.TransactionError, match="task that opened it"):
        async with transaction():
            await asyncio.gather(
                UowAccount.objects.filter(owner="ann").count(),
                UowAccount(owner="other").insert(),
            )
    assert await UowAccount.objects.count() == 1


async def test_ensure_indexes_is_refused_inside(odm_database: Any) -> None:
    with pytest.raises(odm.TransactionError):
        async with transaction():
            await odm.ensure_indexes()


async def test_causal_session_without_transaction(odm_database: Any) -> None:
    async with odm.session() as s:
        assert odm.current_session() is s
        await UowAccount(owner="causal").insert()
        assert await UowAccount.objects.filter(owner="causal").exists()
        assert not s.in_transaction
    assert odm.current_session() is None


async def test_concurrent_document_transfers_keep_the_total(
    odm_database: Any, odm_long: bool
) -> None:
    load = concurrent_transfers(odm_long)
    accounts = await UowAccount.objects.bulk_create(
        [UowAccount(owner=f"acc{i}", balance=1000) for i in range(load.accounts)]
    )
    ids = [a.id for a in accounts]
    n = load.accounts

    @odm.atomic(retries=50, timeout=60)
    async def transfer(src: Any, dst: Any, amount: int) -> None:
        payer = await UowAccount.objects.get(id=src)
        payer.balance -= amount  # flushed at commit
        await UowAccount.objects.filter(id=dst).update(balance=F("balance") + amount)

    results = await asyncio.gather(
        *(
            transfer(ids[i % n], ids[(i * 3 + 1) % n], 1 + i % 5)
            for i in range(load.transfers)
        ),
        return_exceptions=True,
    )
    gave_up(results)  # the total stays exact all the same
    total = sum(a.balance for a in await UowAccount.objects.all())
    assert total == n * 1000


async def test_concurrent_transfers_keep_the_total_with_inner_blocks_failing_half_the_time(
    odm_database: Any, odm_long: bool
) -> None:
    """Each transfer moves money in an inner atomic block that fails between the debit and
    the credit for every other transfer; the caller swallows the error and leaves normally.
    The whole transaction must then refuse to commit, so no debit lands without its credit."""
    load = concurrent_transfers(odm_long)
    accounts = await UowAccount.objects.bulk_create(
        [UowAccount(owner=f"acc{i}", balance=1000) for i in range(load.accounts)]
    )
    ids = [a.id for a in accounts]
    n = load.accounts

    @odm.atomic
    async def move(src: Any, dst: Any, amount: int, fail: bool) -> None:
        payer = await UowAccount.objects.get(id=src)
        payer.balance -= amount
        await payer.save()
        if fail:
            raise ValueError("refused between the debit and the credit")
        await UowAccount.objects.filter(id=dst).update(balance=F("balance") + amount)

    @odm.atomic(retries=50, timeout=60)
    async def transfer(src: Any, dst: Any, amount: int, fail: bool) -> None:
        with contextlib.suppress(ValueError):
            await move(src, dst, amount, fail)

    async def attempt(i: int) -> tuple[bool, str]:
        failing = i % 2 == 1
        try:
            await transfer(ids[i % n], ids[(i * 3 + 1) % n], 1 + i % 5, failing)
            return failing, "committed"
        except odm.TransactionError:
            return failing, "rolled back"
        except PyMongoError as exc:
            # On a loaded machine a transfer may exhaust its retries; it is aborted whole.
            assert exc.has_error_label("TransientTransactionError"), exc
            return failing, "gave up"

    outcomes = await asyncio.gather(*(attempt(i) for i in range(load.transfers)))
    total = sum(a.balance for a in await UowAccount.objects.all())
    assert total == n * 1000
    assert all(o in ("rolled back", "gave up") for failing, o in outcomes if failing)
    assert all(o in ("committed", "gave up") for failing, o in outcomes if not failing)
    assert sum(o == "gave up" for _, o in outcomes) <= len(outcomes) // 4, outcomes


async def test_queryset_write_autoflushes_tracked_changes_first(odm_database: Any) -> None:
    """API.md section 5: ``ann.age += 1`` then ``update(age=F("age") + 1)`` adds two."""
    ann = await UowAccount(owner="ann", balance=30, tags=["vip"]).insert()
    async with transaction():
        loaded = await UowAccount.objects.get(owner="ann")
        loaded.balance += 1
        await UowAccount.objects.filter(tags="vip").update(balance=F("balance") + 1)
    assert (await UowAccount.objects.get(id=ann.id)).balance == 32


async def test_queryset_delete_autoflushes_tracked_changes_first(
    odm_monitored: MonitoredDatabase,
) -> None:
    """A tracked change reaches the server before a bulk delete: the delete removes the
    document as changed, and the commit has nothing left to write (without the flush, the
    commit would write the change to a document deleted meanwhile and fail)."""
    log = odm_monitored.log
    ann = await UowAccount(owner="ann", balance=30, tags=["vip"]).insert()
    log.clear()
    async with transaction():
        loaded = await UowAccount.objects.get(id=ann.id)
        loaded.balance += 1
        assert await UowAccount.objects.filter(tags="vip").delete() == 1
    assert [n for n in log.names() if n in ("update", "delete")] == ["update", "delete"]
    assert await UowAccount.objects.count() == 0


async def test_a_refused_queryset_write_flushes_nothing(odm_monitored: MonitoredDatabase) -> None:
    """update() / delete() on a queryset they cannot write (sliced) are refused before the
    unit of work's changes are flushed: nothing reaches the server, and the change is
    written at commit as usual."""
    log = odm_monitored.log
    ann = await UowAccount(owner="ann", balance=30).insert()
    async with transaction():
        loaded = await UowAccount.objects.get(id=ann.id)
        loaded.balance += 1
        log.clear()
        with pytest.raises(odm.QueryError, match="sliced"):
            await UowAccount.objects.all()[:1].update(balance=5)
        with pytest.raises(odm.QueryError, match="sliced"):
            await UowAccount.objects.all()[:1].delete()
        assert [n for n in log.names() if n in ("update", "delete")] == []
    assert (await UowAccount.objects.get(id=ann.id)).balance == 31


async def test_a_commit_is_timed_only_under_a_transaction_timeout(
    odm_monitored: MonitoredDatabase,
) -> None:
    """Without ``timeout=`` a commit attempt runs as the driver's ``with_transaction`` runs it
    (no client-side deadline, so no ``maxTimeMS``); with one, under what is left of it."""
    log = odm_monitored.log
    account = await UowAccount(owner="t", balance=1).insert()
    log.clear()
    async with transaction():
        await UowAccount.objects.filter(id=account.id).update(balance=2)
    (commit,) = log.named("commitTransaction")
    assert "maxTimeMS" not in commit
    log.clear()
    async with transaction(timeout=5):
        await UowAccount.objects.filter(id=account.id).update(balance=3)
    (commit,) = log.named("commitTransaction")
    assert 0 < commit["maxTimeMS"] <= 5000
    assert (await UowAccount.objects.get(id=account.id)).balance == 3
