"""Change tracking of set fields against the stored array, and the hash-seed promise on every
write path.

A set is stored as an array in one canonical order (``odm.stored_order.stored_set``). Two
defects broke that promise after the first write:

- a set stored in another order (by another process, or by an odm that stored sets in hash
  order) is the same set, so a save that changed another field took the canonical dump into
  the tracking snapshot; an element added later was then ``$push``-ed onto the stored array,
  which kept the other order, and an equality filter on the set missed the document;
- elements that differ in Python but are stored alike (two datetimes in one millisecond, an
  aware and a naive datetime for the same instant) were stored twice: an equality filter with
  the set read back missed the document, and the first save of the unchanged document read
  back wrote the set again.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from typing import Any

import bson
import pytest
from bson.raw_bson import RawBSONDocument
from set_support import unsorted_pair

from odm import Document, Embedded, Field
from odm.contrib.pytest import MonitoredDatabase

pytestmark = pytest.mark.odm_drivers("pymongo")  # the order is odm's, not the driver's


class HcBadge(Embedded):
    codes: set[str] = set()


class HcTracked(Document):
    name: str = ""
    tags: set[str] = set()
    times: set[dt.datetime] = set()
    badges: list[HcBadge] = Field(default_factory=list)

    class Meta:
        collection = "hc22_tracked"


def writes(monitored: MonitoredDatabase) -> list[dict[str, Any]]:
    """The update documents sent since the log was last cleared."""
    return [
        update["u"]
        for name, command in monitored.log.commands
        if name == "update"
        for update in command["updates"]
    ]


async def test_an_element_added_after_another_field_was_saved_is_stored_in_order(
    odm_monitored: MonitoredDatabase,
) -> None:
    low, high = unsorted_pair()
    collection = odm_monitored.database["hc22_tracked"]
    await collection.insert_one({"name": "n", "tags": [high, low], "times": [], "badges": []})
    loaded = await HcTracked.objects.get(name="n")
    loaded.name = "renamed"
    await loaded.save()
    loaded.tags.add("zzz")  # sorts after both: the old code pushed it onto [high, low]
    odm_monitored.log.clear()
    await loaded.save()
    assert writes(odm_monitored) == [{"$set": {"tags": [low, high, "zzz"]}}]
    assert (await collection.find_one({}))["tags"] == [low, high, "zzz"]
    assert await HcTracked.objects.filter(tags={low, high, "zzz"}).count() == 1


async def test_an_element_added_to_a_set_in_a_list_of_models_is_stored_in_order(
    odm_monitored: MonitoredDatabase,
) -> None:
    low, high = unsorted_pair()
    collection = odm_monitored.database["hc22_tracked"]
    raw = {"name": "n", "tags": [], "times": [], "badges": [{"codes": [high, low]}]}
    await collection.insert_one(raw)
    loaded = await HcTracked.objects.get(name="n")
    loaded.name = "renamed"
    await loaded.save()
    loaded.badges[0].codes |= {"zzz"}
    await loaded.save()
    assert (await collection.find_one({}))["badges"] == [{"codes": [low, high, "zzz"]}]
    odm_monitored.log.clear()
    loaded.badges[0].codes.discard("zzz")
    loaded.badges[0].codes.add("zzz")  # back to the stored content: nothing to write
    await loaded.save()
    assert writes(odm_monitored) == []


async def test_datetimes_stored_alike_are_one_element(odm_monitored: MonitoredDatabase) -> None:
    instant = dt.datetime(2024, 5, 1, 12, 0, 0, 250_000)
    same_millisecond = instant.replace(microsecond=250_400)
    aware = instant.replace(tzinfo=dt.UTC)
    later = dt.datetime(2024, 5, 2)
    document = HcTracked(name="d", times={instant, same_millisecond, aware, later})
    await document.insert()
    stored = await odm_monitored.database["hc22_tracked"].find_one({})
    assert [value.replace(tzinfo=None) for value in stored["times"]] == [instant, later]
    loaded = await HcTracked.objects.get(name="d")
    odm_monitored.log.clear()
    await loaded.save()
    assert writes(odm_monitored) == []  # the old code wrote the set read back
    assert await HcTracked.objects.filter(times=loaded.times).count() == 1
    assert await HcTracked.objects.filter(times=document.times).count() == 1


class HcPet(Document):
    name: str = ""
    tags: set[str] = set()

    class Meta:
        collection = "hc22_pets"
        polymorphic = True


class HcCat(HcPet):
    pairs: set[tuple[int, str]] = set()
    badges: list[HcBadge] = Field(default_factory=list)


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    import bson
    import odm
    from odm import F

    class HcBadge(odm.Embedded):
        codes: set[str] = set()

    class HcPet(odm.Document):
        name: str = ""
        tags: set[str] = set()

        class Meta:
            collection = "hc22_pets"
            polymorphic = True

    class HcCat(HcPet):
        pairs: set[tuple[int, str]] = set()
        badges: list[HcBadge] = odm.Field(default_factory=list)

    def oid(n: int) -> bson.ObjectId:
        return bson.ObjectId(f"{n:024x}")

    async def main() -> None:
        await odm.connect(sys.argv[1], db=sys.argv[2])
        texts = [f"tag-{n}" for n in range(12)]
        pairs = {(n % 3, text) for n, text in enumerate(texts)}
        await HcCat(id=oid(1), name="insert", tags=set(texts), pairs=pairs).insert()
        saved = HcCat(id=oid(2), name="save", tags={"x"})
        await saved.insert()
        saved.tags |= set(texts)
        saved.badges = [HcBadge(codes=set(texts))]
        saved.pairs = pairs
        await saved.save()
        await HcPet.objects.bulk_create([
            HcPet(id=oid(3), name="bulk-pet", tags=set(texts)),
            HcCat(id=oid(4), name="bulk-cat", tags=set(texts), pairs=pairs,
                  badges=[HcBadge(codes=set(texts))]),
        ])
        await HcCat.objects.filter(id=oid(1)).update(tags=set(texts[:7]), pairs=pairs)
        await odm.disconnect()

    asyncio.run(main())
    """
)


async def test_every_write_path_stores_the_same_bytes_whatever_the_hash_seed(
    odm_database: Any, odm_uri: str
) -> None:
    stored: list[list[bytes]] = []
    for seed in ("1", "2"):
        name = f"{odm_database.name}_s{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run(
            [sys.executable, "-c", _WRITER, odm_uri, name], check=True, env=env, timeout=60
        )
        raw = odm_database.client[name].get_collection(
            "hc22_pets", codec_options=bson.CodecOptions(document_class=RawBSONDocument)
        )
        stored.append([document.raw async for document in raw.find().sort("_id", 1)])
        await odm_database.client.drop_database(name)
    assert len(stored[0]) == 4
    assert stored[0] == stored[1]
