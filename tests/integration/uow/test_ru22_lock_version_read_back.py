"""A document stored without a version (before ``Meta.optimistic_lock`` was enabled), loaded
in a block after the block wrote, is read back when the block aborts: it must load at version
0, as any load of it does. It used to take ``None``, which passes for a version set by hand,
so its next ``save()`` was refused with ``StaleDocument`` although nobody else wrote.
"""

from __future__ import annotations

from typing import Any

import bson
import pytest
from uow_support import stored

import odm
from odm import executor
from odm.models.tracking import get_snapshot, version_set_by_hand

pytestmark = pytest.mark.odm_drivers("pymongo")  # the rules are odm's, not the driver's


class RuReadBackItem(odm.Document):
    n: int = 0

    class Meta:
        collection = "ru_read_back_items"
        optimistic_lock = True


class RuReadBackEntry(odm.Document):
    n: int = 0

    class Meta:
        collection = "ru_read_back_entries"


class Abort(Exception):
    """The block's own failure."""


async def test_a_document_stored_without_a_version_saves_after_an_aborted_block(
    odm_database: Any,
) -> None:
    ident = bson.ObjectId()
    await executor.collection(RuReadBackItem).insert_one({"_id": ident, "n": 0})
    with pytest.raises(Abort):
        async with odm.transaction():
            await RuReadBackEntry().insert()  # the block wrote: what it loads is read back
            held = await RuReadBackItem.objects.get(id=ident)
            raise Abort
    assert (held.version, get_snapshot(held)) == (0, {"_id": ident, "n": 0})
    assert not version_set_by_hand(held)
    held.n = 1
    await held.save()  # not stale: nobody else wrote
    assert await stored(held) == {"_id": ident, "n": 1, "version": 1}
