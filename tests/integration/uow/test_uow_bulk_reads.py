"""A queryset's ``update()`` / ``delete()`` inside a transaction, and what the objects the unit
of work holds say afterwards: at once, after the commit, and after an abort.

Before, a bulk write left the identity map's objects as they were: ``order.total`` showed the
replaced value inside the block (a second load gave back the same stale object), and after the
commit the object disagreed with the database without an error. After an abort, a document
read after the block wrote kept the aborted values, and its next ``save()`` wrote them as if
they were the user's. Now the tracked documents of the collection are read again after the
write (:mod:`odm.resync`), and an abort takes back every value the block only read
(:mod:`odm.journal`), keeping what the block's code changed.
"""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.errors import OperationFailure
from uow_support import stored, truthful

import odm
from odm import F, transaction
from odm.contrib.pytest import MonitoredDatabase


class BrAccount(odm.Document):
    owner: str
    balance: int = 0
    status: str = "open"
    tags: list[str] = []
    meta: dict[str, int] = {}

    class Meta:
        collection = "br_accounts"


class BrLocked(odm.Document):
    owner: str
    balance: int = 0

    class Meta:
        collection = "br_locked"
        optimistic_lock = True


class Abort(Exception):
    """The block's own failure."""


# -- at once, and after the commit -----------------------------------------------------------


async def test_a_held_object_shows_an_update_at_once_and_after_the_commit(
    odm_database: Any,
) -> None:
    ann = await BrAccount(owner="ann", balance=10).insert()
    async with transaction():
        held = await BrAccount.objects.get(id=ann.id)
        await BrAccount.objects.filter(id=ann.id).update(balance=F("balance") + 5)
        assert held.balance == 15
        again = await BrAccount.objects.get(id=ann.id)
        assert again is held and again.balance == 15
        held.owner = "anna"
    await truthful(held, fields=True)
    assert (held.owner, held.balance) == ("anna", 15)


async def test_an_update_of_many_reaches_every_held_object_it_matched(odm_database: Any) -> None:
    accounts = [await BrAccount(owner=name, balance=1).insert() for name in "abc"]
    await accounts[2].model_copy(update={"status": "closed"}).save()
    async with transaction():
        held = await BrAccount.objects.order_by("owner")
        # The filter no longer matches once the update ran: the ids are read, not the filter.
        matched = await BrAccount.objects.filter(status="open").update(
            status="done", balance=F("balance") * 10
        )
        assert matched == 2
        assert [(a.status, a.balance) for a in held] == [
            ("done", 10), ("done", 10), ("closed", 1)
        ]
    for account in held:
        await truthful(account, fields=True)


async def test_a_pushed_item_and_an_append_in_memory_are_both_stored_once(
    odm_database: Any,
) -> None:
    ann = await BrAccount(owner="ann").insert()
    async with transaction():
        held = await BrAccount.objects.get(id=ann.id)
        await BrAccount.objects.filter(id=ann.id).update(tags=F("tags").push("server"))
        held.tags.append("mine")
    assert held.tags == ["server", "mine"]
    await truthful(held, fields=True)


async def test_changes_made_before_the_update_are_flushed_first_and_kept(
    odm_database: Any,
) -> None:
    ann = await BrAccount(owner="ann", balance=1).insert()
    async with transaction():
        held = await BrAccount.objects.get(id=ann.id)
        held.owner = "anna"  # unsaved: the autoflush writes it before the update
        await BrAccount.objects.filter(id=ann.id).update(balance=F("balance") + 1)
        assert (held.owner, held.balance) == ("anna", 2)
    await truthful(held, fields=True)


async def test_a_locked_object_takes_the_version_the_update_bumped(odm_database: Any) -> None:
    ann = await BrLocked(owner="ann").insert()
    async with transaction():
        held = await BrLocked.objects.get(id=ann.id)
        await BrLocked.objects.filter(id=ann.id).update(balance=F("balance") + 3)
        held.owner = "anna"  # no StaleDocument at the commit: the object knows the version
    await truthful(held, fields=True)
    assert (held.owner, held.balance, held.version) == ("anna", 3, 2)


async def test_a_held_object_the_delete_removed_is_no_longer_stored(odm_database: Any) -> None:
    ann = await BrAccount(owner="ann").insert()
    bob = await BrAccount(owner="bob").insert()
    async with transaction():
        held = await BrAccount.objects.order_by("owner")
        assert await BrAccount.objects.filter(owner="ann").delete() == 1
        assert [a.is_stored for a in held] == [False, True]
        assert await BrAccount.objects.filter(id=ann.id).first() is None
    assert await stored(ann) is None
    await truthful(held[0])
    await truthful(held[1], fields=True)
    await held[0].save()  # as after delete(): saving it stores it again
    await truthful(held[0], fields=True)
    assert bob.id == held[1].id


async def test_one_read_by_id_follows_a_bulk_write_only_when_objects_are_held(
    odm_monitored: MonitoredDatabase,
) -> None:
    log = odm_monitored.log
    ann = await BrAccount(owner="ann").insert()
    log.clear()
    async with transaction():
        await BrAccount.objects.filter(id=ann.id).update(balance=1)  # nothing held
    assert log.names().count("find") == 0
    bob = await BrAccount(owner="bob").insert()
    log.clear()
    async with transaction():
        await BrAccount.objects.order_by("owner")
        await BrAccount.objects.filter(owner="ann").update(balance=2)
        await BrAccount.objects.filter(id=bob.id).update(balance=3)
    finds = log.named("find")
    assert len(finds) == 3  # the load, then a read after each update
    # Any held document may match a filter on other fields; a filter on one id, that one.
    assert sorted(finds[1]["filter"]["_id"]["$in"]) == sorted([ann.id, bob.id])
    assert finds[2]["filter"] == {"_id": {"$in": [bob.id]}}


async def test_outside_a_transaction_a_loaded_copy_is_left_as_it_was(odm_database: Any) -> None:
    """No unit of work, no identity map: an object loaded before is a copy of that moment, as
    in Django; its next save() sends only its own changes."""
    ann = await BrAccount(owner="ann", balance=1).insert()
    copy = await BrAccount.objects.get(id=ann.id)
    await BrAccount.objects.filter(id=ann.id).update(balance=F("balance") + 1)
    assert copy.balance == 1
    copy.owner = "anna"
    await copy.save()
    raw = await stored(copy)
    assert raw is not None and (raw["owner"], raw["balance"]) == ("anna", 2)


# -- after an abort --------------------------------------------------------------------------


@pytest.mark.parametrize("loaded", ["before the block", "in the block, before the write",
                                    "in the block, after the write"])
async def test_an_abort_takes_back_what_the_block_only_read(
    odm_monitored: MonitoredDatabase, loaded: str
) -> None:
    ann = await BrAccount(owner="ann", balance=10).insert()
    held = await BrAccount.objects.get(id=ann.id) if loaded == "before the block" else None
    with pytest.raises(Abort):
        async with transaction():
            if loaded == "in the block, before the write":
                held = await BrAccount.objects.get(id=ann.id)
            await BrAccount.objects.filter(id=ann.id).update(
                balance=F("balance") + 5, tags=F("tags").push("x"), meta={"n": 1}
            )
            if loaded == "in the block, after the write":
                held = await BrAccount.objects.get(id=ann.id)
            assert held is not None
            # An object loaded before the block is not the unit of work's: a copy of then.
            tracked = loaded != "before the block"
            assert (held.balance, held.tags) == ((15, ["x"]) if tracked else (10, []))
            raise Abort
    assert held is not None
    assert (held.balance, held.tags, held.meta) == (10, [], {})
    await truthful(held, fields=True)
    odm_monitored.log.clear()
    await held.save()
    assert "update" not in odm_monitored.log.names()  # nothing of the aborted block is sent


async def test_an_abort_keeps_what_the_block_changed_itself(
    odm_monitored: MonitoredDatabase,
) -> None:
    ann = await BrAccount(owner="ann", balance=10, tags=["a"], meta={"kept": 1}).insert()
    with pytest.raises(Abort):
        async with transaction():
            await BrAccount.objects.filter(id=ann.id).update(
                balance=F("balance") + 5, tags=F("tags").push("server"), meta={"kept": 1, "x": 2}
            )
            held = await BrAccount.objects.get(id=ann.id)
            held.owner = "anna"          # the user's own changes, after the write
            held.tags.append("mine")
            held.meta["y"] = 3
            await held.save()
            raise Abort
    # The block's own changes stay (its intent); what it only read goes back.
    assert (held.owner, held.balance) == ("anna", 10)
    assert held.tags == ["a", "mine"]
    assert held.meta == {"kept": 1, "y": 3}
    await truthful(held)
    log = odm_monitored.log
    log.clear()
    await held.save()
    (update,) = log.named("update")
    assert update["updates"][0]["u"] == {
        "$set": {"owner": "anna", "meta.y": 3}, "$push": {"tags": {"$each": ["mine"]}}
    }
    await truthful(held, fields=True)


async def test_a_refresh_in_an_aborted_block_is_taken_back(odm_database: Any) -> None:
    ann = await BrAccount(owner="ann", balance=10).insert()
    held = await BrAccount.objects.get(id=ann.id)
    with pytest.raises(Abort):
        async with transaction():
            await BrAccount.objects.filter(id=ann.id).update(balance=F("balance") + 100)
            await held.refresh()
            assert held.balance == 110
            raise Abort
    assert held.balance == 10
    await truthful(held, fields=True)


async def test_a_document_deleted_by_an_aborted_block_is_stored_again(odm_database: Any) -> None:
    ann = await BrAccount(owner="ann", balance=10).insert()
    with pytest.raises(Abort):
        async with transaction():
            held = await BrAccount.objects.get(id=ann.id)
            await BrAccount.objects.filter(id=ann.id).delete()
            assert not held.is_stored
            raise Abort
    assert held.is_stored and held.balance == 10
    await truthful(held, fields=True)


async def test_a_commit_that_fails_takes_back_what_the_block_read(
    odm_database: Any, fail_points_off: None
) -> None:
    ann = await BrLocked(owner="ann").insert()
    await odm_database.client.admin.command({
        "configureFailPoint": "failCommand", "mode": {"times": 1},
        "data": {"failCommands": ["commitTransaction"], "errorCode": 2},
    })
    with pytest.raises(OperationFailure):
        async with transaction():
            held = await BrLocked.objects.get(id=ann.id)
            await BrLocked.objects.filter(id=ann.id).update(balance=F("balance") + 1)
            assert (held.balance, held.version) == (1, 1)
    assert (held.balance, held.version) == (0, 0)
    await truthful(held, fields=True)
