"""What the objects say after a block ends, in the cases a probe of session 16 found wrong,
each on both drivers:

- a block held open by an async generator: closing the generator (or a consumer's ``break``)
  left an inserted document saying it was stored, a nested block half-committed, and the
  consumer's own later writes ran in the generator's transaction and were lost;
- a commit the server applied but whose write concern failed was taken for an abort: the
  documents said nothing was stored, and the next ``save()`` pushed an append again;
- ``uow.flush()`` did not count as a write, so a copy refreshed after it kept the aborted
  value;
- deleting a second object of a tracked document's id (a copy, or one loaded before the block)
  untracked the tracked one: its later change was dropped while it said it was stored;
- a flush of which part matched raised before marking the matched documents written, and a
  block that caught the error committed them, to be written again by the next ``save()``;
- a model bound to another alias with ``connect(models=...)`` was refused in a transaction on
  its own alias, and reached the driver in one on another alias;
- a block whose first command could not be encoded (a NUL in a key) could not go on: every
  later command failed with ``NoSuchTransaction`` (PYTHON-1894);
- a task spawned inside a block that opened its own ``transaction()``, as the docs advise,
  joined the spawning block and was refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError
from pymongo.errors import WriteConcernError
from uow_support import stored, truthful

import odm
from odm import executor, transaction
from odm.exceptions import TransactionError


class BeItem(odm.Document):
    n: int = 0
    tags: list[str] = []

    class Meta:
        collection = "be_items"


class BeOther(odm.Document):
    n: int = 0

    class Meta:
        collection = "be_other"


class Abort(Exception):
    """The block's own failure."""


async def test_an_async_generator_cannot_hold_a_block_open(odm_database: Any) -> None:
    async def holds(document: BeItem) -> AsyncIterator[BeItem]:
        async with transaction():
            await document.insert()
            yield document

    async def holds_nested(document: BeItem) -> AsyncIterator[None]:
        async with transaction():
            await document.insert()
            yield None

    async def holds_through_a_stack(document: BeItem) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(transaction())
            await document.insert()
            yield None

    first = BeItem(n=1)
    with pytest.raises(TransactionError, match=r"async generator .*holds\(\)"):
        async for _ in holds(first):
            break
    assert odm.current_session() is None  # nothing left bound in the consumer
    async with transaction():
        with pytest.raises(TransactionError, match=r"holds_nested\(\)"):
            async for _ in holds_nested(BeItem(n=2)):
                break
        await BeItem(n=3).insert()  # the outer block was not touched by the refusal
    with pytest.raises(TransactionError, match=r"holds_through_a_stack\(\)"):
        async for _ in holds_through_a_stack(BeItem(n=4)):
            break
    assert sorted(d.n for d in await BeItem.objects.all()) == [3]
    assert not first.is_stored


async def test_a_block_entered_by_an_asynccontextmanager_or_a_coroutine_of_a_generator_runs(
    odm_database: Any,
) -> None:
    @contextlib.asynccontextmanager
    async def unit() -> AsyncIterator[odm.UnitOfWork]:
        async with transaction() as uow:
            yield uow

    async def save_one(n: int) -> None:  # its block opens and ends within one step
        async with transaction():
            await BeItem(n=n).insert()

    async def each(values: list[int]) -> AsyncIterator[int]:
        for n in values:
            await save_one(n)
            yield n

    async with unit():
        await BeItem(n=1).insert()
    assert [n async for n in each([2, 3])] == [2, 3]
    assert sorted(d.n for d in await BeItem.objects.all()) == [1, 2, 3]


async def test_a_commit_whose_write_concern_fails_is_read_back(odm_database: Any) -> None:
    # No replica set has ten members: the primary applies the commit, then reports
    # UnsatisfiableWriteConcern, which carries no UnknownTransactionCommitResult label.
    held_id = (await BeItem(n=0).insert()).id
    new = BeItem(n=1)
    with pytest.raises(WriteConcernError):
        async with transaction(write_concern=10):
            held = await BeItem.objects.get(id=held_id)
            held.tags.append("x")
            await new.insert()
    await truthful(new, fields=True)
    await truthful(held, fields=True)
    await held.save()
    await new.save()
    assert (await stored(held) or {})["tags"] == ["x"]


async def test_a_flush_counts_as_a_write_of_the_block(odm_database: Any) -> None:
    ident = (await BeItem(n=0).insert()).id
    before = await BeItem.objects.get(id=ident)  # a copy of its time, loaded before the block
    with pytest.raises(Abort):
        async with transaction() as uow:
            tracked = await BeItem.objects.get(id=ident)
            tracked.n = 5
            await uow.flush()
            await before.refresh()  # reads the block's own write
            assert before.n == 5
            raise Abort
    await truthful(before, fields=True)
    await truthful(tracked)


@pytest.mark.parametrize("how", ["a copy", "one loaded before the block"])
async def test_deleting_another_object_of_a_tracked_id_deletes_the_tracked_one(
    odm_database: Any, how: str
) -> None:
    ident = (await BeItem(n=0).insert()).id
    before = await BeItem.objects.get(id=ident)
    async with transaction():
        tracked = await BeItem.objects.get(id=ident)
        other = tracked.model_copy() if how == "a copy" else before
        await other.delete()
        tracked.n = 3
    await truthful(tracked)
    assert not tracked.is_stored
    await tracked.save()  # it was deleted: saving inserts it again, with its change
    assert (await stored(tracked) or {})["n"] == 3


async def test_a_flush_that_matched_in_part_cannot_be_committed(odm_database: Any) -> None:
    a_id = (await BeItem(n=1).insert()).id
    b_id = (await BeItem(n=2).insert()).id
    c_id = (await BeItem(n=3).insert()).id
    with pytest.raises(TransactionError, match="matched 1 of the 2 changed BeItem"):
        async with transaction():
            a = await BeItem.objects.get(id=a_id)
            b = await BeItem.objects.get(id=b_id)
            a.tags.append("x")
            b.n = 20
            # b removed behind the unit of work's back (documented as unseen by it)
            await executor.collection(BeItem).delete_one(
                {"_id": b_id}, session=odm.current_session()
            )
            with pytest.raises(BeItem.DoesNotExist):
                await BeItem.objects.filter(id=c_id).update(n=30)  # autoflush first
            await b.delete()  # the block accounts for b, and would commit a's $push
    await truthful(a)
    assert (await stored(a) or {})["tags"] == []
    await a.save()
    assert (await stored(a) or {})["tags"] == ["x"]


async def test_a_model_bound_to_another_alias_is_used_on_that_alias(
    odm_database: Any, odm_uri: str, odm_driver: str
) -> None:
    name = f"odm_test_other_{uuid.uuid4().hex[:8]}"
    await odm.connect(odm_uri, db=name, alias="other", models=[BeOther], driver=odm_driver)
    try:
        with pytest.raises(TransactionError, match="BeOther uses the connection alias 'other'"):
            async with transaction():
                await BeOther(n=1).insert()
        async with transaction("other"):
            await BeOther(n=2).insert()
        assert [d.n for d in await BeOther.objects.all()] == [2]
    finally:
        await odm.get_client("other").drop_database(name)
        await odm.disconnect("other")


class BeBag(odm.Document):
    data: dict[str, Any] = {}

    class Meta:
        collection = "be_bags"


async def test_a_first_command_that_cannot_be_encoded_leaves_the_block_usable(
    odm_database: Any,
) -> None:
    # PyMongo marked the transaction started before encoding its first command: the next
    # command went without startTransaction, and the server answered NoSuchTransaction.
    async with transaction():
        with pytest.raises(ValidationError, match="cannot be stored in BSON"):
            await BeBag(data={"a\x00b": 1}).insert()
        assert await BeBag.objects.count() == 0
        await BeBag(data={"ok": 1}).insert()
    assert [d.data for d in await BeBag.objects.all()] == [{"ok": 1}]


async def test_a_task_spawned_in_a_block_gets_a_transaction_of_its_own(odm_database: Any) -> None:
    # The docs' remedy for tasks inside a block; it joined the spawning block and was refused.
    async def worker(n: int) -> None:
        async with transaction():
            await BeItem(n=n).insert()

    await odm_database.create_collection("be_items")  # not by three transactions at once
    with pytest.raises(Abort):
        async with transaction():
            await BeItem(n=0).insert()
            await asyncio.gather(worker(1), worker(2))  # each commits on its own
            late = asyncio.create_task(worker(3))  # runs after the block has ended
            raise Abort
    await late
    assert sorted(d.n for d in await BeItem.objects.all()) == [1, 2, 3]
