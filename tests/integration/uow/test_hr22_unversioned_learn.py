"""A document stored without a version (before ``Meta.optimistic_lock`` was enabled) loads at
version 0. An object holding it in a block, whose document another object deletes and inserts
again, learns the insert as it does for a versioned document: its version 0 against the
missing stored key used to count as a change of its own, so it stayed "not stored" and its
next ``save()`` tried to insert, raising ``DuplicateKey``.
"""

from __future__ import annotations

from typing import Any

import bson
import pytest
from uow_support import stored

import odm
from odm import executor

pytestmark = pytest.mark.odm_drivers("pymongo")  # the rules are odm's, not the driver's


class HrLockedItem(odm.Document):
    n: int = 0

    class Meta:
        collection = "hr22_locked_items"
        optimistic_lock = True


class HrLockedPair(odm.Document):
    n: int = 0
    m: int = 0

    class Meta:
        collection = "hr22_locked_pairs"
        optimistic_lock = True


@pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])
async def test_a_held_object_learns_a_reinsert_of_its_document(
    odm_database: Any, versioned: bool
) -> None:
    ident = bson.ObjectId()
    raw = {"_id": ident, "n": 0, **({"version": 3} if versioned else {})}
    await executor.collection(HrLockedItem).insert_one(raw)
    outside = await HrLockedItem.objects.get(id=ident)
    async with odm.transaction():
        held = await HrLockedItem.objects.get(id=ident)
        await outside.delete()
        await outside.insert()
        inserted = outside.version
        held.n = 5
        await held.save()
    assert held.version == inserted + 1
    assert await stored(held) == {"_id": ident, "n": 5, "version": inserted + 1}


async def test_a_held_unversioned_object_changed_before_the_reinsert_stays_stale(
    odm_database: Any,
) -> None:
    """Its own change was made on the document deleted since: not a copy of the insert."""
    ident = bson.ObjectId()
    await executor.collection(HrLockedItem).insert_one({"_id": ident, "n": 0})
    outside = await HrLockedItem.objects.get(id=ident)
    with pytest.raises(odm.DuplicateKey):
        async with odm.transaction():
            held = await HrLockedItem.objects.get(id=ident)
            held.n = 5
            await outside.delete()
            await outside.insert()
            await held.save()


@pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])
async def test_a_held_object_learns_a_save_through_another_object(
    odm_database: Any, versioned: bool
) -> None:
    ident = bson.ObjectId()
    raw = {"_id": ident, "n": 0, "m": 0, **({"version": 3} if versioned else {})}
    await executor.collection(HrLockedPair).insert_one(raw)
    outside = await HrLockedPair.objects.get(id=ident)
    async with odm.transaction():
        held = await HrLockedPair.objects.get(id=ident)
        outside.n = 1
        await outside.save()
        held.m = 2
        await held.save()
    assert (held.n, held.m, held.version) == (1, 2, outside.version + 1)
    assert await stored(held) == {"_id": ident, "n": 1, "m": 2, "version": held.version}

