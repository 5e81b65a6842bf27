"""Updates of a set field keep its stored array in the one order every process stores it in.

``F("tags").add_to_set(x)`` and ``.push(x)`` were sent as ``$addToSet`` / ``$push``, which
append at the end of the array (``push`` a value already there a second time): the stored
array left the canonical order (:func:`odm.stored_order.stored_set`) until the set was written
whole, so an equality filter on the set missed the document and another process stored the
same set as another array. They are now sent as an update pipeline inserting each value at its
place, which the server compares as the set's stored order does (checked here for every
element type it is accepted on).
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import uuid
from typing import Any

import bson
import pytest
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions
from hypothesis import given
from hypothesis import strategies as st

from odm import Document, F, ObjectId, QueryError
from odm.stored_order import bson_value
from tests.properties import server_property


class St23Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"
    GREEN = "green"


class St23Tagged(Document):
    key: str
    texts: set[str] = set()
    nums: frozenset[float] = frozenset()
    ints: set[int] = set()
    days: set[dt.datetime] = set()
    colours: set[St23Colour] = set()
    ids: set[ObjectId] = set()
    uids: set[uuid.UUID] = set()
    maybe: set[str] | None = None
    note: str = ""

    class Meta:
        collection = "st23_tagged"
        optimistic_lock = True  # its $inc is written by the pipeline too


_IDS = [bson.ObjectId() for _ in range(5)]
_UIDS = [uuid.uuid4() for _ in range(5)]
_ELEMENTS: dict[str, st.SearchStrategy[Any]] = {
    "texts": st.text(st.characters(exclude_categories=["Cs"]), max_size=3),
    # One NaN object: MongoDB takes every NaN for one value, and so does a Python set of it.
    "nums": st.floats(allow_nan=False) | st.just(math.nan) | st.integers(-3, 3).map(float),
    "ints": st.integers(-(2**63), 2**63 - 1) | st.integers(-3, 3),
    "days": st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2100, 1, 1)).map(
        lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
    ),
    "colours": st.sampled_from(list(St23Colour)),
    "ids": st.sampled_from(_IDS),
    "uids": st.sampled_from(_UIDS),
}


def _steps(name: str) -> st.SearchStrategy[tuple[str, list[tuple[str, list[Any]]]]]:
    values = st.lists(_ELEMENTS[name], min_size=1, max_size=3)
    step = st.tuples(st.sampled_from(["add_to_set", "push", "pull", "whole"]), values)
    return st.tuples(st.just(name), st.lists(step, min_size=1, max_size=4))


def _apply(held: set[Any], how: str, values: list[Any]) -> set[Any]:
    """What a Python set holding ``held`` holds after the step."""
    if how == "whole":
        return set(values)
    if how == "pull":
        return held - set(values)
    return held | set(values)


def _written(name: str, how: str, values: list[Any]) -> Any:
    if how == "whole":
        return set(values)
    return getattr(F(name), how)(*values)


_STANDARD = CodecOptions(uuid_representation=UuidRepresentation.STANDARD)


def _encoded(values: list[Any]) -> bytes:
    """``values`` BSON-encoded as the ODM stores them (an enum as its value, UUIDs in the
    standard representation)."""
    return bson.encode({"": [bson_value(value) for value in values]}, codec_options=_STANDARD)


@pytest.mark.odm_drivers("pymongo")  # the order is the server's and odm's, not the driver's
@server_property(max_examples=25, database=None)
@given(drawn=st.sampled_from(sorted(_ELEMENTS)).flatmap(_steps), start=st.integers(0, 2))
async def test_any_updates_of_a_set_leave_the_array_a_dump_of_the_set_stores(
    odm_database: Any, drawn: tuple[str, list[tuple[str, list[Any]]]], start: int
) -> None:
    name, steps = drawn
    raw = odm_database["st23_tagged"]
    await raw.delete_many({})
    # Missing (stored before the field was declared), empty, or holding a value.
    held: set[Any] = {steps[0][1][0]} if start == 2 else set()
    await St23Tagged(key="k", **{name: held}).insert()
    if not start:
        await raw.update_one({"key": "k"}, {"$unset": {name: 1}})
    for how, values in steps:
        assert await St23Tagged.objects.filter(key="k").update(
            **{name: _written(name, how, values)}
        ) == 1
        held = _apply(held, how, values)
    stored = await raw.find_one({"key": "k"})
    assert stored["version"] == len(steps)
    if name not in stored:  # missing at the start, and only pulled from
        assert not start and not held and all(how == "pull" for how, _ in steps)
        return
    dumped = St23Tagged(key="k", **{name: held}).to_bson()[name]
    assert _encoded(stored[name]) == _encoded(dumped), (stored[name], dumped)
    assert await St23Tagged.objects.filter(key="k", **{name: held}).count() == 1


async def test_a_push_of_a_value_held_adds_nothing_and_keeps_the_order(
    odm_database: Any,
) -> None:
    doc = St23Tagged(key="p", texts={"b", "d"})
    await doc.insert()
    await St23Tagged.objects.filter(id=doc.id).update(texts=F("texts").push("d", "a", "c", "a"))
    await St23Tagged.objects.filter(key="p").update(
        texts=F("texts").add_to_set("$b", "b"), note="x"
    )
    stored = await odm_database["st23_tagged"].find_one({"_id": doc.id})
    assert stored["texts"] == ["$b", "a", "b", "c", "d"] and stored["note"] == "x"
    assert stored["version"] == 2
    assert await St23Tagged.objects.filter(texts={"a", "b", "c", "d", "$b"}).count() == 1


async def test_adding_to_a_null_set_is_refused_and_writes_nothing(odm_database: Any) -> None:
    await St23Tagged.objects.bulk_create([St23Tagged(key="n1"), St23Tagged(key="n2")])
    with pytest.raises(QueryError, match="'maybe'"):
        await St23Tagged.objects.update(maybe=F("maybe").add_to_set("x"), note="y")
    one = await St23Tagged.objects.get(key="n1")
    with pytest.raises(QueryError, match=r"holds a null .* at 'maybe'") as refused:
        await St23Tagged.objects.filter(id=one.id).update(maybe=F("maybe").push("x"))
    assert refused.value.field == "maybe"
    stored = [raw async for raw in odm_database["st23_tagged"].find()]
    assert [(raw["maybe"], raw["note"], raw["version"]) for raw in stored] == [(None, "", 0)] * 2


async def test_a_set_added_to_under_a_collation_is_refused_before_anything_is_sent(
    odm_database: Any,
) -> None:
    doc = St23Tagged(key="c", texts={"B"})
    await doc.insert()
    with pytest.raises(QueryError, match="collation") as refused:
        await St23Tagged.objects.collation("en", strength=2).filter(key="c").update(
            texts=F("texts").add_to_set("b")
        )
    assert refused.value.field == "texts"
    stored = await odm_database["st23_tagged"].find_one({"_id": doc.id})
    assert stored["texts"] == ["B"] and stored["version"] == 0


async def test_update_or_create_stores_a_set_in_order(odm_database: Any) -> None:
    texts = {f"t{n}" for n in range(20)}
    await St23Tagged.objects.update_or_create({"texts": texts}, key="u")
    await St23Tagged.objects.update_or_create({"texts": texts | {"a"}}, key="u")
    stored = await odm_database["st23_tagged"].find_one({"key": "u"})
    assert stored["texts"] == sorted(texts | {"a"})
