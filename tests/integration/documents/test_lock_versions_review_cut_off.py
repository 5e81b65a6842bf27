"""``Meta.optimistic_lock``: an ``insert()`` cut off (its outcome unknown), then ``save()`` or
``delete()``, which read what its ``_id`` holds first. What is stored is the object's own
document only when it is what the insert sent; otherwise (another object inserted the id
meanwhile, or the insert ran and someone else saved it since) the object never loaded it, and
its write must be refused as stale instead of passing the version check and writing over it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import bson
import pytest

import odm

pytestmark = pytest.mark.odm_drivers("pymongo", "motor")


class VerCutItem(odm.Document):
    n: int = 0

    class Meta:
        collection = "ver_cut_items"
        optimistic_lock = True


async def insert_cut_off(item: VerCutItem, hold: Any, ran: bool) -> None:
    """Insert ``item`` past a deadline, the server holding it, then running it or not."""
    await hold("insert", ran, 150)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await item.insert()
    await hold.over()  # the server is done with the held insert


async def stored(database: Any, ident: Any) -> dict[str, Any]:
    found: dict[str, Any] = await database.ver_cut_items.find_one({"_id": ident})
    return found


@pytest.mark.parametrize("write", ["save", "delete"])
async def test_another_insert_of_the_id_meanwhile_is_not_written_over(
    odm_database: Any, hold: Any, write: str
) -> None:
    ident = bson.ObjectId()
    item = VerCutItem(id=ident, n=1)
    await insert_cut_off(item, hold, ran=False)
    other = await VerCutItem(id=ident, n=5).insert()  # another process
    item.n = 2
    with pytest.raises(odm.StaleDocument, match="VerCutItem"):
        await (item.save() if write == "save" else item.delete())
    assert await stored(odm_database, ident) == other.to_bson()
    await item.refresh()
    assert (item.n, item.version) == (5, other.version)


@pytest.mark.parametrize("write", ["save", "delete"])
async def test_a_save_by_someone_else_after_the_insert_ran_is_not_written_over(
    odm_database: Any, hold: Any, write: str
) -> None:
    item = VerCutItem(n=1)
    await insert_cut_off(item, hold, ran=True)
    other = await VerCutItem.objects.get(id=item.id)
    other.n = 7
    await other.save()
    item.n = 2
    with pytest.raises(odm.StaleDocument):
        await (item.save() if write == "save" else item.delete())
    assert await stored(odm_database, item.id) == other.to_bson()


async def test_an_insert_that_ran_is_learnt_with_its_version(
    odm_database: Any, hold: Any
) -> None:
    item = VerCutItem(n=1)
    await insert_cut_off(item, hold, ran=True)
    item.n = 2
    await item.save()  # its own document, as it sent it: the save goes through
    assert await stored(odm_database, item.id) == item.to_bson()
    assert item.version == 1 and item.is_stored
