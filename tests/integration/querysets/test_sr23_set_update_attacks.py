"""Hostile and careless additions to a set field (``F("tags").add_to_set(...)`` / ``.push``),
sent as an update pipeline that inserts each value at its place in the stored order.

Two defects found here. A set field holding a null or another value than a list (written by
another program) made the server refuse the pipeline with ``$in requires an array``, naming
no field, and an ``update_many`` stopped at that document, keeping what it wrote before it;
such a document is now refused by name before anything is written. And an array out of the
stored order, or holding a value twice (written by another program, or by odm's
``add_to_set`` before it kept the order), stayed so: the value was put between the elements
below it and those above it, which kept the repeats and the disorder, so an equality filter
on the set still missed the document; the first addition now stores the set's own array.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from typing import Any

import bson
import pytest
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import Field

import odm
from odm import Document, F, QueryError, Reference
from odm.stored_order import bson_value
from tests.properties import server_property


class Sr23Held(Document):
    key: str
    texts: set[str] = set()
    ints: set[int] = set()
    nums: set[float] = set()
    days: set[dt.datetime] = set()
    note: str = ""

    class Meta:
        collection = "sr23_held"
        optimistic_lock = True


_INT64 = st.integers(-(2**63), 2**63 - 1)
_SOME_FLOATS = st.sampled_from([math.nan, 0.0, -0.0, 1.0, -1.5, math.inf, -math.inf, 1e308])
_UTC = dt.UTC
_MS_DAYS = st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2100, 1, 1)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000, tzinfo=_UTC)
)
#: What another program may have stored (in no order, a value twice), per field.
_STORED: dict[str, st.SearchStrategy[Any]] = {
    "texts": st.text(st.characters(exclude_categories=["Cs"]), max_size=3),
    "ints": _INT64 | st.integers(-3, 3),
    "nums": _SOME_FLOATS | st.integers(-3, 3).map(float),
    "days": _MS_DAYS,
}
#: What a user may send: text that looks like a path, a variable or an operator, a NUL;
#: values pydantic coerces ("1", True, 2.0 into a set of ints); both zeros; datetimes
#: naive, aware in another zone, with microseconds BSON drops.
_SENT: dict[str, st.SearchStrategy[Any]] = {
    "texts": _STORED["texts"]
    | st.sampled_from(["$texts", "$$ROOT", "$$REMOVE", "$literal", "$$value", "a\x00b", "$"]),
    "ints": _STORED["ints"] | st.sampled_from(["1", "-2", True, False, 2.0, -(2**63)]),
    "nums": _STORED["nums"] | st.sampled_from([1, "2.5", True]),
    "days": st.datetimes(
        dt.datetime(1900, 1, 2),
        dt.datetime(2099, 12, 31),
        timezones=st.sampled_from([None, _UTC, dt.timezone(dt.timedelta(hours=-5))]),
    ),
}
_STANDARD = CodecOptions(uuid_representation=UuidRepresentation.STANDARD)


def _encoded(values: list[Any]) -> bytes:
    """``values`` BSON-encoded as the ODM stores them."""
    return bson.encode({"": [bson_value(value) for value in values]}, codec_options=_STANDARD)


def _drawn(name: str) -> st.SearchStrategy[tuple[str, list[Any] | None, list[Any], str]]:
    held = st.none() | st.lists(_STORED[name], max_size=4)  # None: the field is missing
    sent = st.lists(_SENT[name], min_size=1, max_size=4)
    return st.tuples(st.just(name), held, sent, st.sampled_from(["add_to_set", "push"]))


@pytest.mark.odm_drivers("pymongo")  # the order is the server's and odm's, not the driver's
@server_property(max_examples=20, database=None)
@given(drawn=st.sampled_from(sorted(_STORED)).flatmap(_drawn))
@example(drawn=("texts", ["b", "a", "b"], ["$texts", "$$ROOT"], "push"))
@example(drawn=("nums", [1.0, math.nan, 1.0], [-0.0, 0.0], "add_to_set"))
async def test_an_addition_stores_the_array_a_dump_of_the_set_stores(
    odm_database: Any, drawn: tuple[str, list[Any] | None, list[Any], str]
) -> None:
    name, held, sent, how = drawn
    raw = odm_database["sr23_held"]
    await raw.delete_many({})
    await raw.insert_one({"key": "k", "version": 0, **({} if held is None else {name: held})})

    matched = await Sr23Held.objects.filter(key="k").update(**{name: getattr(F(name), how)(*sent)})

    stored = await raw.find_one({"key": "k"})
    # The Python set of what was there and what was sent, as pydantic validates it (the
    # first of two equal values kept, as a set keeps it).
    expected = Sr23Held(key="k", **{name: [*(held or []), *sent]})
    assert matched == 1 and stored["version"] == 1
    assert _encoded(stored[name]) == _encoded(expected.to_bson()[name]), (stored[name], held)
    assert await Sr23Held.objects.filter(key="k", **{name: getattr(expected, name)}).count() == 1


@pytest.mark.odm_drivers("pymongo")
async def test_a_set_holding_no_list_is_refused_by_name_and_nothing_is_written(
    odm_database: Any,
) -> None:
    raw = odm_database["sr23_held"]
    await raw.insert_many([
        {"key": "a", "version": 0, "texts": []},
        {"key": "b", "version": 0, "texts": "written by another program"},
        {"key": "c", "version": 0, "texts": None},
    ])
    for key in ("b", "c"):
        one = await raw.find_one({"key": key})
        with pytest.raises(QueryError, match=r"_id=.* holds a null .* at 'texts'") as refused:
            await Sr23Held.objects.filter(id=one["_id"]).update(texts=F("texts").push("x"))
        assert refused.value.field == "texts"
    with pytest.raises(QueryError, match="nothing was written") as refused:
        await Sr23Held.objects.update(texts=F("texts").add_to_set("x"), note="n")
    assert refused.value.field == "texts"
    rows = [(r["texts"], r.get("note", ""), r["version"]) async for r in raw.find()]
    assert rows == [([], "", 0), ("written by another program", "", 0), (None, "", 0)]


async def test_a_tracked_document_reads_the_set_an_update_stored_in_a_transaction(
    odm_database: Any,
) -> None:
    await Sr23Held.objects.bulk_create([Sr23Held(key="t1", texts={"m"}), Sr23Held(key="t2")])
    async with odm.transaction():
        one = await Sr23Held.objects.get(key="t1")
        one.note = "changed first"  # flushed before the update (autoflush): one bump
        assert await Sr23Held.objects.filter(id=one.id).update(texts=F("texts").push("z", "a")) == 1
        assert one.texts == {"a", "m", "z"} and one.version == 2
        assert await Sr23Held.objects.update(texts=F("texts").add_to_set("b")) == 2
        assert one.texts == {"a", "b", "m", "z"} and one.version == 3
    stored = [(r["texts"], r["version"]) async for r in odm_database["sr23_held"].find()]
    assert stored == [(["a", "b", "m", "z"], 3), (["b"], 1)]


class Sr23Owner(Document):
    name: str

    class Meta:
        collection = "sr23_owners"


class Sr23Animal(Document):
    name: str
    owner: Reference[Sr23Owner] | None = None
    tags: set[str] = Field(default_factory=set, alias="tg")

    class Meta:
        collection = "sr23_animals"
        polymorphic = True
        optimistic_lock = True


class Sr23Cat(Sr23Animal):
    toys: frozenset[str] = frozenset()


@pytest.mark.odm_drivers("pymongo")
async def test_a_subclass_an_alias_and_a_filter_through_a_reference_add_in_order(
    odm_database: Any,
) -> None:
    ann, bob = Sr23Owner(name="ann"), Sr23Owner(name="bob")
    await Sr23Owner.objects.bulk_create([ann, bob])
    await Sr23Cat.objects.bulk_create([
        Sr23Cat(name="tom", owner=ann, tags={"b"}), Sr23Cat(name="kit", owner=ann),
        Sr23Cat(name="rex", owner=bob),
    ])
    await Sr23Animal(name="gen", owner=ann).insert()
    # Chosen by an aggregation (across the reference), written by their ids.
    assert await Sr23Cat.objects.filter(owner__name="ann").update(
        toys=F("toys").add_to_set("m", "a"), tags=F("tags").push("c", "a")
    ) == 2
    rows = {r["name"]: r async for r in odm_database["sr23_animals"].find()}
    assert [(rows[n]["tg"], rows[n].get("toys"), rows[n]["version"]) for n in rows] == [
        (["a", "b", "c"], ["a", "m"], 1), (["a", "c"], ["a", "m"], 1), ([], [], 0), ([], None, 0)
    ]
    assert await Sr23Cat.objects.filter(tags={"a", "b", "c"}, toys={"m", "a"}).count() == 1


async def test_tasks_adding_to_one_set_at_once_lose_nothing(odm_database: Any) -> None:
    doc = Sr23Held(key="c")
    await doc.insert()
    added = [f"v{n:02d}" for n in range(12)]
    counts = await asyncio.gather(*(
        Sr23Held.objects.filter(id=doc.id).update(texts=F("texts").add_to_set(value, "shared"))
        for value in reversed(added)
    ))
    stored = await odm_database["sr23_held"].find_one({"_id": doc.id})
    assert counts == [1] * len(added) and stored["version"] == len(added)
    assert stored["texts"] == sorted([*added, "shared"])
