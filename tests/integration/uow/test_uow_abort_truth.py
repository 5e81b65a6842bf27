"""What the objects say after a block ends badly, in the cases a probe of session 15 found
wrong, each on both drivers:

- a block that fails on a lost connection (or a commit of unknown outcome) read the documents
  it wrote back from the server, but left the values it never touched as they were: the next
  ``save()`` wrote them over what another client had committed;
- under an optimistic lock, a document loaded after the block's first write, changed, and
  changed by another client meanwhile, saved over that change after an abort;
- after an abort, a ``dict[str, Any]`` field shared its inner objects with the snapshot, so
  a change in place was never saved;
- a ``refresh()`` in a block that then failed was undone, though it had read committed values;
- a write whose connection was lost could be caught, and the block then committed what the
  write may or may not have done;
- after an inner block failed and the outer one caught it, raw driver calls bound to the
  session ran outside any transaction and were committed at once.
"""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.errors import ConnectionFailure, PyMongoError
from uow_support import close_connection_at_next, fail_point, stored, truthful

import odm
from odm import F, drivers, executor, transaction
from odm.models.tracking import get_snapshot


class AtAccount(odm.Document):
    owner: str
    balance: int = 0
    tags: list[str] = []

    class Meta:
        collection = "at_accounts"


class AtEntry(odm.Document):
    amount: int = 0

    class Meta:
        collection = "at_entries"


class AtLocked(odm.Document):
    name: str
    n: int = 0

    class Meta:
        collection = "at_locked"
        optimistic_lock = True


class AtBag(odm.Document):
    data: dict[str, Any] = {}
    hits: int = 0

    class Meta:
        collection = "at_bags"


class Abort(Exception):
    """The block's own failure."""


async def elsewhere(document: odm.Document, update: dict[str, Any]) -> None:
    """Commit ``update`` to ``document`` as another client would: in a session of its own,
    outside any transaction, even inside a block whose session is bound."""
    coll = executor.collection(type(document))
    session = await drivers.start_session(coll.database.client)
    try:
        await drivers.resolve(coll.update_one({"_id": document.id}, update, session=session))
    finally:
        await drivers.end_session(session)


# -- a lost connection or a commit of unknown outcome: the documents are read back ---------


@pytest.mark.usefixtures("fail_points_off")
async def test_a_lost_connection_keeps_what_another_client_committed(odm_database: Any) -> None:
    ann = await AtAccount(owner="ann", balance=1).insert()
    await elsewhere(ann, {"$set": {"balance": 5}})  # ann is a copy of its time
    with pytest.raises(ConnectionFailure):
        async with transaction():
            ann.tags.append("x")
            await ann.save()
            await close_connection_at_next(odm_database, "insert")
            await AtEntry(amount=1).insert()
    # Read back from the server: the block never changed the balance, so it is the stored
    # one; the tag it pushed was rolled back, and stays the block's change, to save again.
    assert get_snapshot(ann) == await stored(ann)
    assert (ann.balance, ann.tags) == (5, ["x"])
    await ann.save()
    assert {k: (await stored(ann) or {})[k] for k in ("balance", "tags")} == {
        "balance": 5, "tags": ["x"]
    }
    assert await AtEntry.objects.count() == 0


@pytest.mark.usefixtures("fail_points_off")
async def test_a_commit_of_unknown_outcome_keeps_what_another_client_committed(
    odm_database: Any,
) -> None:
    ann = await AtAccount(owner="ann", balance=1).insert()
    await elsewhere(ann, {"$set": {"balance": 5}})
    await fail_point(
        odm_database, {"failCommands": ["commitTransaction"], "closeConnection": True}, times=1000
    )
    with pytest.raises((odm.OperationTimeout, PyMongoError)):
        async with transaction(timeout=1.0):
            ann.tags.append("x")
            await ann.save()
    await odm_database.client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    assert get_snapshot(ann) == await stored(ann)
    assert (ann.balance, ann.tags) == (5, ["x"])
    await ann.save()
    assert (await stored(ann) or {})["balance"] == 5


# -- the optimistic lock after an abort ----------------------------------------------------


async def test_a_change_made_on_a_version_someone_else_replaced_is_stale_after_an_abort(
    odm_database: Any,
) -> None:
    await AtLocked(name="c").insert()
    with pytest.raises(Abort):
        async with transaction():
            await AtEntry(amount=1).insert()  # the block has written: what it loads is a read
            held = await AtLocked.objects.get(name="c")
            held.n += 1
            await elsewhere(held, {"$set": {"n": 5}, "$inc": {"version": 1}})
            raise Abort
    assert held.n == 1  # the block's change stays, for the user to decide on
    with pytest.raises(odm.StaleDocument):
        await held.save()
    assert (await stored(held) or {})["n"] == 5


async def test_a_change_made_on_the_aborted_write_saves_on_the_stored_version(
    odm_database: Any,
) -> None:
    """The read held the aborted transaction's own write (a newer version than the stored
    one): nobody else wrote, so the block's change is saved on the stored version."""
    locked = await AtLocked(name="d").insert()
    with pytest.raises(Abort):
        async with transaction():
            await AtLocked.objects.filter(id=locked.id).update(n=F("n") + 10)
            held = await AtLocked.objects.get(id=locked.id)
            held.name = "dee"
            raise Abort
    await truthful(held)
    await held.save()
    assert (await stored(held) or {})["name"] == "dee"
    await truthful(held)


# -- no object shared with the snapshot after an abort ---------------------------------------


async def test_a_free_form_dict_read_back_after_an_abort_is_not_the_snapshots(
    odm_database: Any,
) -> None:
    bag = await AtBag(data={"k": [1]}).insert()
    with pytest.raises(Abort):
        async with transaction():
            held = await AtBag.objects.get(id=bag.id)
            await AtBag.objects.filter(id=bag.id).update(hits=F("hits") + 1)
            raise Abort
    snapshot = get_snapshot(held)
    assert snapshot is not None and held.data["k"] is not snapshot["data"]["k"]
    held.data["k"].append(2)
    await held.save()
    assert (await stored(held) or {})["data"] == {"k": [1, 2]}


# -- refresh() is a read ----------------------------------------------------------------------


async def test_a_refresh_in_a_failed_block_that_wrote_nothing_is_kept(odm_database: Any) -> None:
    ann = await AtAccount(owner="ann", balance=1).insert()
    await elsewhere(ann, {"$set": {"balance": 5}})
    with pytest.raises(Abort):
        async with transaction():
            await ann.refresh()
            assert ann.balance == 5
            raise Abort
    await truthful(ann, fields=True)
    ann.balance += 10
    await ann.save()
    assert (await stored(ann) or {})["balance"] == 15


async def test_a_refresh_after_the_blocks_write_is_read_back_after_the_abort(
    odm_database: Any,
) -> None:
    ann = await AtAccount(owner="ann", balance=1).insert()
    with pytest.raises(Abort):
        async with transaction():
            await AtAccount.objects.filter(id=ann.id).update(balance=F("balance") + 100)
            await ann.refresh()
            assert ann.balance == 101
            raise Abort
    await truthful(ann, fields=True)
    assert ann.balance == 1


# -- a lost connection caught in the block: rollback-only --------------------------------------


@pytest.mark.usefixtures("fail_points_off")
async def test_a_write_whose_connection_was_lost_makes_the_block_rollback_only(
    odm_database: Any,
) -> None:
    ann = await AtAccount(owner="ann").insert()
    with pytest.raises(odm.TransactionError, match="lost connection"):
        async with transaction():
            await AtEntry(amount=1).insert()
            ann.tags.append("x")
            await close_connection_at_next(odm_database, "update")
            with pytest.raises(ConnectionFailure):
                await ann.save()  # the push may have run: nobody can tell
            with pytest.raises(odm.TransactionError, match="AtAccount update"):
                await AtEntry(amount=2).insert()
    await truthful(ann)
    assert ann.tags == ["x"]
    assert await AtEntry.objects.count() == 0


# -- raw driver calls after an inner block failed ----------------------------------------------


async def test_raw_writes_after_an_inner_failure_are_rolled_back_with_the_block(
    odm_database: Any, odm_driver: str
) -> None:
    raw = executor.collection(AtEntry)
    with pytest.raises(odm.TransactionError, match="inner atomic block failed"):
        async with transaction():
            await AtEntry(amount=1).insert()
            with pytest.raises(Abort):
                async with transaction():
                    raise Abort
            session = odm.current_session()
            await drivers.resolve(raw.insert_one({"amount": 2}, session=session))
            if odm_driver == "pymongo":  # PyMongo binds the session to every call
                await raw.insert_one({"amount": 3})
    assert await drivers.resolve(raw.count_documents({})) == 0


async def test_raw_writes_after_an_inner_block_fails_twice_are_rolled_back(
    odm_database: Any,
) -> None:
    """A block inside a block that failed (its own inner block failed first) fails too: the
    raw writes made between the two are aborted, and those made after it still join a
    transaction that is never committed."""
    raw = executor.collection(AtEntry)
    with pytest.raises(odm.TransactionError, match="inner atomic block failed"):
        async with transaction():
            session = odm.current_session()
            with pytest.raises(ValueError):
                async with transaction():
                    with pytest.raises(Abort):
                        async with transaction():
                            raise Abort
                    await drivers.resolve(raw.insert_one({"amount": 1}, session=session))
                    raise ValueError("the middle block fails too")
            await drivers.resolve(raw.insert_one({"amount": 2}, session=session))
    assert await drivers.resolve(raw.count_documents({})) == 0
