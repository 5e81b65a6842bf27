"""A set field is stored in one order, the same in every process, and compared as a set.

A ``set[str]`` / ``frozenset[int]`` field (also in an embedded model) was stored as an array in
the order Python iterated the set: for text an order that changes with each process's hash
seed (PYTHONHASHSEED). So an equality filter built in one process missed the document another
stored, a unique index on the field took the same set twice, and every save of a loaded
document wrote its unchanged sets back. The array another process wrote is stood in for by the
raw driver storing the elements in an order this process does not iterate them in.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from set_support import unsorted_pair

from odm import Document, DuplicateKey, Embedded, Field
from odm.contrib.pytest import MonitoredDatabase
from odm.models.indexes import Index
from odm.schema import ensure_indexes

pytestmark = pytest.mark.odm_drivers("pymongo")  # the order is odm's, not the driver's


class HsBadge(Embedded):
    codes: frozenset[int] = frozenset()


class HsTagged(Document):
    name: str = ""
    tags: set[str] = set()
    codes: frozenset[int] | None = None
    badge: HsBadge = Field(default_factory=HsBadge)
    badges: list[HsBadge] = []
    notes: dict[str, Any] = {}  # a field only pydantic dumps: the whole document is

    class Meta:
        collection = "hs22_tagged"


class HsLabel(Embedded):
    names: frozenset[str]


class HsUniqueLabel(Document):
    label: HsLabel

    class Meta:
        collection = "hs22_unique_labels"
        # The sub-document is indexed whole, its array in its stored order (an index on the
        # array itself would index each element, whatever the order).
        indexes = [Index("label", unique=True, name="hs22_label_unique")]


async def test_a_filter_on_a_whole_set_matches_the_array_another_process_stored(
    odm_database: Any,
) -> None:
    low, high = unsorted_pair()
    await odm_database["hs22_tagged"].insert_one({"name": "other", "tags": [low, high]})
    assert await HsTagged.objects.filter(tags=[high, low]).count() == 1
    assert await HsTagged.objects.filter(tags={high, low}).count() == 1
    assert await HsTagged.objects.filter(tags__ne=[high, low]).count() == 0
    assert await HsTagged.objects.exclude(tags={low, high}).count() == 0
    mql = HsTagged.objects.filter(tags={high, low}).query.where[0].mql
    assert mql == {"tags": {"$eq": [low, high]}}


async def test_every_dump_path_stores_sets_in_order(odm_database: Any) -> None:
    low, high = unsorted_pair()
    document = HsTagged(
        name="one",
        tags={high, low},
        codes=frozenset({3, -1, 2}),
        badge=HsBadge(codes=frozenset({9, 4})),
        badges=[HsBadge(codes=frozenset({7, 5}))],
    )
    await document.insert()
    await HsTagged.objects.bulk_create([HsTagged(name="bulk", tags={high, low})])
    raws = {raw["name"]: raw async for raw in odm_database["hs22_tagged"].find()}
    assert raws["one"]["tags"] == raws["bulk"]["tags"] == [low, high]
    assert raws["one"]["codes"] == [-1, 2, 3]
    assert raws["one"]["badge"] == {"codes": [4, 9]}
    assert raws["one"]["badges"] == [{"codes": [5, 7]}]
    await HsTagged.objects.filter(name="bulk").update(tags={high, low, "a"})
    updated = await odm_database["hs22_tagged"].find_one({"name": "bulk"})
    assert updated["tags"] == ["a", low, high]


async def test_an_unchanged_set_stored_in_another_order_is_not_written(
    odm_monitored: MonitoredDatabase,
) -> None:
    low, high = unsorted_pair()
    raw = {
        "name": "n",
        "tags": [high, low],
        "codes": [3, 1],
        "badge": {"codes": [9, 4]},
        "badges": [{"codes": [7, 5]}],
        "notes": {},
    }
    await odm_monitored.database["hs22_tagged"].insert_one(raw)
    loaded = await HsTagged.objects.get(name="n")
    odm_monitored.log.clear()
    await loaded.save()
    assert [name for name, _ in odm_monitored.log.commands] == []
    loaded.tags.add("a")
    loaded.badge.codes = frozenset({4, 10})
    await loaded.save()
    (update,) = [command for name, command in odm_monitored.log.commands if name == "update"]
    assert update["updates"][0]["u"] == {"$set": {"tags": ["a", low, high], "badge.codes": [4, 10]}}
    stored = await odm_monitored.database["hs22_tagged"].find_one({"name": "n"})
    assert stored["tags"] == ["a", low, high] and stored["codes"] == [3, 1]
    odm_monitored.log.clear()
    await loaded.save()
    assert [name for name, _ in odm_monitored.log.commands] == []


async def test_a_unique_index_on_a_set_refuses_the_set_another_process_stored(
    odm_database: Any,
) -> None:
    await ensure_indexes(models=[HsUniqueLabel])
    low, high = unsorted_pair()
    await odm_database["hs22_unique_labels"].insert_one({"label": {"names": [low, high]}})
    with pytest.raises(DuplicateKey):
        await HsUniqueLabel(label=HsLabel(names=frozenset({high, low}))).insert()
    with pytest.raises(DuplicateKey):
        await HsUniqueLabel.objects.bulk_create([HsUniqueLabel(label=HsLabel(names={high, low}))])
    assert await HsUniqueLabel.objects.count() == 1


def test_elements_of_mixed_types_have_one_order() -> None:
    values: list[Any] = [2, "b", 1.5, "a", b"x", None, True]
    orders = {
        tuple(HsLoose(values=set(values[at:] + values[:at])).to_bson()["values"])
        for at in range(len(values))
    }
    assert len(orders) == 1
    nan_sets = {
        tuple(map(repr, HsLoose(values={float("nan"), 1.0, -2}).to_bson()["values"]))
        for _ in range(3)
    }
    assert len(nan_sets) == 1


class HsLoose(Document):
    values: set[Any] = set()

    class Meta:
        collection = "hs22_loose"


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    import odm

    class HsTagged(odm.Document):
        name: str = ""
        tags: set[str] = set()

        class Meta:
            collection = "hs22_tagged"

    async def main() -> None:
        await odm.connect(sys.argv[1], db=sys.argv[2])
        await HsTagged(name=sys.argv[3], tags=set(sys.argv[4:])).insert()
        await odm.disconnect()

    asyncio.run(main())
    """
)


async def test_a_set_another_process_inserted_is_found(odm_database: Any, odm_uri: str) -> None:
    texts = [f"tag-{n}" for n in range(8)]
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run(
            [sys.executable, "-c", _WRITER, odm_uri, odm_database.name, f"by-{seed}", *texts],
            check=True,
            env=env,
            timeout=60,
        )
    found = (
        await HsTagged.objects.filter(tags=set(texts))
        .order_by("name")
        .values_list("name", flat=True)
    )
    assert list(found) == ["by-1", "by-2"]
    stored = [raw["tags"] async for raw in odm_database["hs22_tagged"].find()]
    assert stored == [sorted(texts), sorted(texts)]


class HsFreeForm(Document):
    extra: Any = None

    class Meta:
        collection = "hs22_free_form"


async def test_a_set_in_a_free_form_field_is_stored_in_order(odm_database: Any) -> None:
    # Where no dump plan orders it (an Any or dict field: the encoder meets the set), a set is
    # stored in the same order as a set field's.
    first, second = unsorted_pair()
    names = {first, second, *(f"x{n}" for n in range(30))}
    doc = HsFreeForm(extra={"names": names, "inner": [frozenset({3, 1, 2})]})
    await doc.insert()
    raw = await odm_database["hs22_free_form"].find_one({"_id": doc.id})
    assert raw["extra"] == {"names": sorted(names), "inner": [[1, 2, 3]]}
