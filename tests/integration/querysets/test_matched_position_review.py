"""A review of the refusal of ``matched()`` updates whose ``$`` may take another element's
position (``test_matched_position.py``), on the server: every filter shape drawn is refused
before anything is sent, or writes, in each matching document, one element of the written list
that meets every test of that list's elements, and nothing else.

MongoDB's ``$`` is the position of the last array element it noted while matching, in ANY
array: a field odm does not read as a list but that is stored as one (a ``NamedTuple``, a
``MutableSequence``, a ``RootModel`` of a list) notes its element's position too.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, MutableSequence
from typing import Any, NamedTuple

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import Field, RootModel

from odm import Document, Embedded, F, Q, QueryError
from odm.contrib.pytest import MonitoredDatabase
from tests.properties import server_property

pytestmark = pytest.mark.odm_drivers("pymongo")  # the checks are odm's, not the driver's


class RvColour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class RvPair(NamedTuple):
    """Stored as a list ``[first, second]``, whose first element is itself a list."""

    first: list[int]
    second: int


class RvAnys(RootModel[list[Any]]):
    """Stored as its root: a list."""


class RvLine(Embedded):
    sku: str
    qty: int = 0
    tags: list[str] = []


class RvDoc(Document):
    """The written lists (``tags``, ``lines``) and fields holding, or stored as, lists."""

    k: int = 0
    tags: list[str] = []
    lines: list[RvLine] = []
    maybe: list[str] | None = None
    tup: tuple[str, ...] = ()
    labels: list[str] = Field(default=[], alias="lb")
    meta: dict[str, list[int]] = {}
    cols: list[RvColour] = []
    pair: RvPair | None = None
    seq: MutableSequence[Any] = []
    root: RvAnys = RvAnys([])

    class Meta:
        collection = "rv_docs"


def _line(sku: str, qty: int, *tags: str) -> dict[str, Any]:
    return {"sku": sku, "qty": qty, "tags": list(tags)}


#: Stored documents whose lists meet the tests at positions that differ from list to list (the
#: other lists' often past the written list's end).
_DOCS: list[dict[str, Any]] = [
    {"k": 0, "tags": ["z", "0", "c"], "lines": [_line("s", 5), _line("r", 1, "h")],
     "maybe": ["q", "a"], "tup": ["a"], "lb": ["x", "y", "a"], "meta": {"k": [0, 0, 1]},
     "cols": ["blue", "red"], "pair": [[1], 2], "seq": [0, [1, 2]], "root": [0, [1, 2]]},
    {"k": 1, "tags": ["x", "a", "y"],
     "lines": [_line("q", 0), _line("q", 0), _line("q", 0), _line("r", 3, "h")],
     "maybe": None, "tup": [], "lb": ["a"], "meta": {}, "cols": ["red"], "pair": None,
     "seq": [], "root": []},
    {"k": 2, "tags": ["a", "m", "b"], "lines": [_line("r", 1), _line("s", 5, "j"),
                                                _line("r", 3, "h")],
     "maybe": ["c", "c", "c", "c", "a"], "tup": ["b", "b", "a"], "lb": [],
     "meta": {"k": [1]}, "cols": ["red", "red", "blue"], "pair": [[5, 5], 0],
     "seq": [[1, 2]], "root": [[1, 2]]},
    {"k": 3, "tags": [], "lines": [], "maybe": [], "tup": [], "lb": [], "meta": {},
     "cols": [], "pair": None, "seq": [], "root": []},
    {"k": 4, "tags": ["c"], "lines": [_line("r", 2, "j", "h")], "maybe": ["a"], "tup": ["c"],
     "lb": ["c", "c", "c", "c"], "meta": {"k": [2, 2, 2, 2, 1]}, "cols": ["blue"],
     "pair": [[0], 9], "seq": [5, 5, 5, [1, 2]], "root": [5, 5, 5, [1, 2]]},
]


async def _reset(database: Any) -> list[dict[str, Any]]:
    """Store :data:`_DOCS` afresh; return them as stored, in ``k`` order."""
    collection = database[RvDoc._meta.collection]
    await collection.delete_many({})
    await collection.insert_many([dict(doc) for doc in _DOCS])
    return await _stored(database)


async def _stored(database: Any) -> list[dict[str, Any]]:
    found = database[RvDoc._meta.collection].find({}, {"_id": 0}).sort("k", 1)
    return [doc async for doc in found]


# -- a collection stored as a list is another list ------------------------------------------


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        # Each notes position 1 (k=0) or 0 (k=2) of its own list, not of tags: $ wrote there.
        ({"pair__lte": RvPair([9], 9)}, "pair"),
        ({"seq": [1, 2]}, "seq"),
        ({"root": [1, 2]}, "root"),
    ],
    ids=["namedtuple", "mutable-sequence", "root-model"],
)
async def test_a_collection_stored_as_a_list_is_another_list_refused_before_sending(
    monitored: MonitoredDatabase, filters: dict[str, Any], field: str
) -> None:
    before = await _reset(monitored.database)
    monitored.log.clear()
    query = RvDoc.objects.filter(tags="a", **filters)
    with pytest.raises(QueryError, match=f"also tests '{field}', which may hold a list"):
        await query.update(tags=F("tags").matched("W"))
    assert monitored.log.names() == []
    assert await _stored(monitored.database) == before


# -- drawn: refused before any write, or one element meeting every element test written ----

#: A drawn condition: the Q, the list it tests the elements of ("other": none written here)
#: and what that element must meet (``None``: the document meets it, not an element).
_Drawn = tuple[Q, str, Callable[[Any], bool] | None]


def _tags(q: Q, meets: Callable[[str], bool] | None) -> _Drawn:
    return (q, "tags", meets)


def _lines(q: Q, meets: Callable[[dict[str, Any]], bool] | None) -> _Drawn:
    return (q, "lines", meets)


_V = st.sampled_from(["a", "c", "m", "y"])
_TAG_TESTS = st.one_of(
    _V.map(lambda v: _tags(Q(tags=v), lambda e, v=v: e == v)),
    _V.map(lambda v: _tags(Q(tags__gte=v), lambda e, v=v: e >= v)),
    _V.map(lambda v: _tags(Q(tags__startswith=v), lambda e, v=v: e.startswith(v))),
    _V.map(lambda v: _tags(Q(tags__icontains=v.upper()), lambda e, v=v: v in e.lower())),
    _V.map(lambda v: _tags(Q(tags__regex=f"^[{v}-z]"), lambda e, v=v: v <= e[0] <= "z")),
    _V.map(lambda v: _tags(Q(tags__all=[v]), lambda e, v=v: e == v)),
    st.tuples(_V, _V).map(lambda p: _tags(Q(tags__in=list(p)), lambda e, p=p: e in p)),
    st.tuples(_V, _V).map(lambda p: _tags(Q(tags__range=p), lambda e, p=p: p[0] <= e <= p[1])),
    st.tuples(_V, _V).map(lambda p: _tags(
        Q(tags__elemmatch={"gte": p[0], "lte": p[1]}), lambda e, p=p: p[0] <= e <= p[1])),
    _V.map(lambda v: _tags(~Q(tags=v), None)),
    _V.map(lambda v: _tags(Q(tags__1=v), None)),
    st.just(_tags(Q(tags__size=3), None)),
)
_SKUS = st.sampled_from(["r", "s"])
_LINE_TESTS = st.one_of(
    _SKUS.map(lambda v: _lines(Q(lines__sku=v), lambda e, v=v: e["sku"] == v)),
    st.sampled_from([2, 5]).map(
        lambda n: _lines(Q(lines__qty__gte=n), lambda e, n=n: e["qty"] >= n)),
    st.sampled_from(["h", "j"]).map(
        lambda v: _lines(Q(lines__tags=v), lambda e, v=v: v in e["tags"])),
    _SKUS.map(lambda v: _lines(
        Q(lines__elemmatch=Q(sku=v, qty__gte=2)), lambda e, v=v: e["sku"] == v and e["qty"] >= 2)),
    _SKUS.map(lambda v: _lines(Q(lines__1__sku=v), None)),
    _SKUS.map(lambda v: _lines(~Q(lines__sku=v), None)),
)
#: Tests of the other fields (lists, or stored as lists; a scalar), positive and negative.
_OTHER_TESTS = st.sampled_from([
    Q(maybe="a"), Q(tup="a"), Q(labels="a"), Q(meta__k=1), Q(cols=RvColour.BLUE),
    Q(pair__lte=RvPair([9], 9)), Q(seq=[1, 2]), Q(root=[1, 2]), Q(k__gte=1),
    ~Q(maybe="q"), Q(maybe__size=5), Q(labels__0="c"),
]).map(lambda q: (q, "other", None))


def _combined(drawn: list[_Drawn], ors: bool) -> Q:
    """The drawn conditions ANDed; ``ors``: the last two ORed instead (no element noted:
    a test of the document)."""
    q = Q()
    for condition, _, _ in drawn[: len(drawn) - 2 if ors else len(drawn)]:
        q &= condition
    if ors:
        q &= drawn[-2][0] | drawn[-1][0]
    return q


def _written_positions(before: list[Any], after: list[Any]) -> list[int]:
    """The positions of ``after`` that differ from ``before`` (one past its end counts)."""
    changed = [i for i, (b, a) in enumerate(zip(before, after, strict=False)) if b != a]
    return changed + list(range(len(before), len(after)))


@server_property(max_examples=30, derandomize=True)
@given(
    drawn=st.lists(_TAG_TESTS | _LINE_TESTS | _OTHER_TESTS, min_size=1, max_size=3),
    target=st.sampled_from(["tags", "lines"]),
    ors=st.booleans(),
)
@example(drawn=[_tags(Q(tags="a"), lambda e: e == "a"),
                (Q(pair__lte=RvPair([9], 9)), "other", None)], target="tags", ors=False)
@example(drawn=[_lines(Q(lines__sku="r"), lambda e: e["sku"] == "r"),
                (Q(seq=[1, 2]), "other", None)], target="lines", ors=False)
async def test_matched_is_refused_first_or_writes_one_element_meeting_every_element_test(
    monitored: MonitoredDatabase, drawn: list[_Drawn], target: str, ors: bool
) -> None:
    ors = ors and len(drawn) >= 2
    before = await _reset(monitored.database)
    query = RvDoc.objects.filter(_combined(drawn, ors))
    matching = {doc.k async for doc in query}
    update = {"tags": F("tags").matched("W")} if target == "tags" else {
        "lines": F("lines").matched(qty=99)}
    monitored.log.clear()
    try:
        count = await query.update(**update)
    except QueryError:
        assert "update" not in monitored.log.names()
        assert await _stored(monitored.database) == before
        return
    assert count == len(matching)
    tested = drawn[: len(drawn) - 2] if ors else drawn
    element_tests = [meets for _, on, meets in tested if on == target and meets is not None]
    for old, new in zip(before, await _stored(monitored.database), strict=True):
        assert {**new, target: old[target]} == old  # nothing but the written list changed
        written = _written_positions(old[target], new[target])
        assert len(written) == (old["k"] in matching), (old, new)
        for position in written:
            assert position < len(old[target]), (old, new)  # not past the end
            assert all(meets(old[target][position]) for meets in element_tests), (old, new)
