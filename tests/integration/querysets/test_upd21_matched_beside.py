"""``matched()`` beside a reference lookup, and beside a whole-value test of a type stored as
an array, on the server.

A lookup through a reference (``owner__name="x"``) is run by an aggregation that finds the
documents' ids; the update was sent with those ids alone, so a test of the written list beside
it was refused as "does not test 'tags'". It is written now with the tests of the collection's
own fields the aggregation ran first, which tell ``$`` the element; the joined documents'
tests cannot move ``$``. A test of the list inside an ``|`` with a reference's is refused,
naming that.

MongoDB 6 matches a whole array only after its elements, and notes no position for it: an
equality with a whole ``NamedTuple`` / ``MutableSequence[int]`` / ``RootModel`` of scalars
cannot move ``$`` (their elements are never lists). The stored keys of those fields sort after
``tags`` (``z...``): MongoDB runs the tests of an ``$and`` in its own order, by path, and an
element one of them noted would win over ``tags``' (the hypothesis test checks that no
position but an element of ``tags`` meeting every test of ``tags`` is ever written).
"""

from __future__ import annotations

from collections.abc import Callable, MutableSequence
from typing import Any, NamedTuple

import pytest
from bson import ObjectId
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import Field, RootModel

from odm import Document, F, Index, Point, Q, QueryError, Reference
from odm.contrib.pytest import MonitoredDatabase
from tests.properties import server_property

pytestmark = pytest.mark.odm_drivers("pymongo")  # the checks are odm's, not the driver's


class Upd21Point(NamedTuple):
    """Stored as ``[x, y]``: elements that are never lists."""

    x: int
    y: int


class Upd21Pair(NamedTuple):
    """Stored as ``[first, second]``, whose first element is a list."""

    first: list[int]
    second: int


class Upd21Ints(RootModel[list[int]]):
    """Stored as its root, a list of ints."""


class Upd21Owner(Document):
    name: str

    class Meta:
        collection = "upd21_mb_owners"


class Upd21Place(Document):
    k: int = 0
    tags: list[str] = []
    loc: Point

    class Meta:
        collection = "upd21_mb_places"
        indexes = [Index(("loc", "2dsphere"))]


class Upd21Holder(Document):
    k: int = 0
    tags: list[str] = []
    tup: tuple[str, ...] = ()
    owner: Reference[Upd21Owner] | None = None
    owners: list[Reference[Upd21Owner]] = []
    point: Upd21Point | None = Field(default=None, alias="zpoint")
    seq: MutableSequence[int] = Field(default=[], alias="zseq")
    root: Upd21Ints = Field(default=Upd21Ints([]), alias="zroot")
    pair: Upd21Pair | None = Field(default=None, alias="zpair")

    class Meta:
        collection = "upd21_mb_holders"


_X, _Y = ObjectId(), ObjectId()
_OWNERS = [{"_id": _X, "name": "x"}, {"_id": _Y, "name": "y"}]
#: ``a`` at another position of ``tags`` than each other field's elements that a test meets.
_DOCS: list[dict[str, Any]] = [
    {"k": 0, "tags": ["x", "a", "z"], "tup": ["a"], "owner": _X, "owners": [_Y, _X],
     "zpoint": [1, 2], "zseq": [1, 2], "zroot": [1, 2], "zpair": [[1, 2], 2]},
    {"k": 1, "tags": ["a", "m"], "tup": ["a"], "owner": _Y, "owners": [_X],
     "zpoint": [1, 2], "zseq": [2, 1, 9], "zroot": [1, 2], "zpair": [[5], 1]},
    {"k": 2, "tags": ["c", "m", "a"], "tup": [], "owner": _X, "owners": [],
     "zpoint": [3, 4], "zseq": [1, 2], "zroot": [2], "zpair": None},
    {"k": 3, "tags": [], "tup": [], "owner": None, "owners": [],
     "zpoint": None, "zseq": [], "zroot": [], "zpair": None},
]


async def _reset(database: Any) -> list[dict[str, Any]]:
    """Store the owners and :data:`_DOCS` afresh; return the documents as stored."""
    owners = database[Upd21Owner._meta.collection]
    await owners.delete_many({})
    await owners.insert_many([dict(owner) for owner in _OWNERS])
    holders = database[Upd21Holder._meta.collection]
    await holders.delete_many({})
    await holders.insert_many([dict(doc) for doc in _DOCS])
    return await _stored(database)


async def _stored(database: Any) -> list[dict[str, Any]]:
    found = database[Upd21Holder._meta.collection].find({}, {"_id": 0}).sort("k", 1)
    return [doc async for doc in found]


def _written(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[int, list[Any]]:
    """The ``tags`` of each document the update changed, by ``k``."""
    return {old["k"]: new["tags"] for old, new in zip(before, after, strict=True) if old != new}


async def _check_matched_writes(
    monitored: MonitoredDatabase, lookups: dict[str, Any], written: dict[int, list[str]]
) -> None:
    """``filter(tags="a", **lookups).update(tags=F("tags").matched("W"))`` writes exactly
    ``written`` (the new tags by document index) and counts those documents."""
    before = await _reset(monitored.database)
    count = await Upd21Holder.objects.filter(tags="a", **lookups).update(
        tags=F("tags").matched("W")
    )
    assert count == len(written)
    assert _written(before, await _stored(monitored.database)) == written


@pytest.mark.parametrize(
    ("lookups", "written"),
    [
        ({"owner__name": "x"}, {0: ["x", "W", "z"], 2: ["c", "m", "W"]}),
        ({"owners__name": "y"}, {0: ["x", "W", "z"]}),
        ({"owner": _Y}, {1: ["W", "m"]}),
        ({"owner__in": [_Y]}, {1: ["W", "m"]}),
    ],
    ids=["through-a-reference", "through-a-list-of-references", "reference-id", "reference-in"],
)
async def test_a_reference_lookup_beside_the_list_test_writes_the_element_it_matched(
    monitored: MonitoredDatabase, lookups: dict[str, Any], written: dict[int, list[str]]
) -> None:
    await _check_matched_writes(monitored, lookups, written)


@pytest.mark.parametrize(
    "query",
    [
        Q(tags="a", owner__name="x") | Q(tags="a", owner__name="y"),
        Q(tags="a") | Q(owner__name="x"),
    ],
    ids=["or-of-ands", "or"],
)
async def test_a_list_test_inside_an_or_with_a_reference_is_refused_naming_it(
    monitored: MonitoredDatabase, query: Q
) -> None:
    before = await _reset(monitored.database)
    monitored.log.clear()
    with pytest.raises(QueryError, match=r"tests 'tags' together with a test through a ref"):
        await Upd21Holder.objects.filter(query).update(tags=F("tags").matched("W"))
    assert "update" not in monitored.log.names()
    assert await _stored(monitored.database) == before


async def test_a_filter_through_a_reference_only_still_says_it_does_not_test_the_list(
    monitored: MonitoredDatabase,
) -> None:
    before = await _reset(monitored.database)
    with pytest.raises(QueryError, match="the filter does not test 'tags'"):
        await Upd21Holder.objects.filter(owner__name="x").update(tags=F("tags").matched("W"))
    assert await _stored(monitored.database) == before


async def test_geo_near_beside_the_list_test_writes_the_element_it_matched(
    monitored: MonitoredDatabase,
) -> None:
    """``geo_near()`` chooses the documents with an aggregation too (its ``$geoNear`` holds
    the filter): the update is sent with that filter beside the ids found."""
    places = monitored.database[Upd21Place._meta.collection]
    await places.create_index([("loc", "2dsphere")])
    await places.insert_many([
        {"k": 0, "tags": ["x", "a"], "loc": {"type": "Point", "coordinates": [2.35, 48.85]}},
        {"k": 1, "tags": ["a", "a"], "loc": {"type": "Point", "coordinates": [50.0, 10.0]}},
    ])
    near = Upd21Place.objects.filter(tags="a").geo_near(
        "loc", Point(2.35, 48.85), max_distance=5000
    )
    assert await near.update(tags=F("tags").matched("W")) == 1
    found = places.find({}, {"_id": 0, "tags": 1}).sort("k", 1)
    assert [doc["tags"] async for doc in found] == [["x", "W"], ["a", "a"]]


@pytest.mark.parametrize(
    ("lookups", "written"),
    [
        ({"point": Upd21Point(1, 2)}, {0: ["x", "W", "z"], 1: ["W", "m"]}),
        ({"point": (1, 2)}, {0: ["x", "W", "z"], 1: ["W", "m"]}),
        ({"seq": [1, 2]}, {0: ["x", "W", "z"], 2: ["c", "m", "W"]}),
        ({"root": Upd21Ints([1, 2])}, {0: ["x", "W", "z"], 1: ["W", "m"]}),
        ({"point__in": [Upd21Point(3, 4), (1, 2)]}, {0: ["x", "W", "z"], 1: ["W", "m"],
                                                     2: ["c", "m", "W"]}),
    ],
    ids=["namedtuple", "namedtuple-as-tuple", "mutable-sequence", "root-model", "in"],
)
async def test_whole_value_equality_of_an_array_of_scalars_writes_the_tested_element(
    monitored: MonitoredDatabase, lookups: dict[str, Any], written: dict[int, list[str]]
) -> None:
    await _check_matched_writes(monitored, lookups, written)


async def test_whole_value_equality_of_an_array_that_may_hold_lists_is_still_refused(
    monitored: MonitoredDatabase,
) -> None:
    before = await _reset(monitored.database)
    query = Upd21Holder.objects.filter(tags="a", pair=Upd21Pair([1, 2], 2))
    with pytest.raises(QueryError, match="also tests 'zpair', which may hold a list"):
        await query.update(tags=F("tags").matched("W"))
    assert await _stored(monitored.database) == before


async def test_whole_tuple_equality_on_the_written_list_is_refused_before_sending(
    monitored: MonitoredDatabase,
) -> None:
    """A whole ``tuple[str, ...]`` value notes no element: the server would stop the update
    ("The positional operator did not find the match needed")."""
    before = await _reset(monitored.database)
    monitored.log.clear()
    with pytest.raises(QueryError, match="no element of 'tup' noted"):
        await Upd21Holder.objects.filter(tup=("a",)).update(tup=F("tup").matched("W"))
    assert "update" not in monitored.log.names()
    assert await _stored(monitored.database) == before


# -- drawn: refused before any write, or one element meeting every test of tags -------------

_V = st.sampled_from(["a", "m", "z"])
#: A test of ``tags`` and what the element ``$`` writes must meet (``None``: a document test).
_TAG_TESTS: st.SearchStrategy[tuple[Q, Callable[[str], bool] | None]] = st.one_of(
    _V.map(lambda v: (Q(tags=v), lambda e, v=v: e == v)),
    _V.map(lambda v: (Q(tags__gte=v), lambda e, v=v: e >= v)),
    _V.map(lambda v: (~Q(tags=v), None)),
)
_OTHER_TESTS: st.SearchStrategy[tuple[Q, Callable[[str], bool] | None]] = st.sampled_from([
    Q(owner__name="x"), Q(owners__name="x"), Q(owner=_Y), Q(owners=_X),
    Q(point=Upd21Point(1, 2)), Q(seq=[1, 2]), Q(root=Upd21Ints([1, 2])),
    Q(pair=Upd21Pair([1, 2], 2)), Q(pair__lte=Upd21Pair([9], 9)),
    Q(tags="a") | Q(owner__name="y"), ~Q(owners__name="y"), Q(tags="m") | ~Q(k=0),
    Q(tags="z") | Q(tags__ne="m"),
]).map(lambda q: (q, None))


@server_property(max_examples=25, derandomize=True)
@given(drawn=st.lists(_TAG_TESTS | _OTHER_TESTS, min_size=1, max_size=3))
@example(drawn=[(Q(tags="a"), lambda e: e == "a"), (Q(point=Upd21Point(1, 2)), None)])
@example(drawn=[(Q(root=Upd21Ints([1, 2])), None), (Q(tags__gte="m"), lambda e: e >= "m")])
@example(drawn=[(Q(owners__name="x"), None), (Q(tags="a"), lambda e: e == "a")])
async def test_matched_is_refused_first_or_writes_an_element_meeting_every_test_of_tags(
    monitored: MonitoredDatabase, drawn: list[tuple[Q, Callable[[str], bool] | None]]
) -> None:
    before = await _reset(monitored.database)
    query = Q()
    for condition, _ in drawn:
        query &= condition
    matching = {doc.k async for doc in Upd21Holder.objects.filter(query)}
    monitored.log.clear()
    try:
        count = await Upd21Holder.objects.filter(query).update(tags=F("tags").matched("W"))
    except QueryError:
        assert "update" not in monitored.log.names()
        assert await _stored(monitored.database) == before
        return
    assert count == len(matching)
    tests = [meets for _, meets in drawn if meets is not None]
    for old, new in zip(before, await _stored(monitored.database), strict=True):
        assert {**new, "tags": old["tags"]} == old  # nothing but tags changed
        assert len(new["tags"]) == len(old["tags"]), (old, new)  # not padded past its end
        pairs = enumerate(zip(old["tags"], new["tags"], strict=True))
        changed = [i for i, (b, a) in pairs if b != a]
        assert len(changed) == (old["k"] in matching), (old, new)
        assert all(meets(old["tags"][i]) for i in changed for meets in tests), (old, new)
