"""``F(list).matched(...)`` writes MongoDB's positional ``$``: the position of the LAST element
MongoDB noted while matching the filter, in an order of its own. With a filter that also tests
another list, that may be the position of the other list's element; with two tests of the
written list (``lines__sku="r", lines__qty__gte=2``), that of an element meeting only one.
Either way ``$`` wrote an element the filter did not match, or one past the list's end. odm
refuses such filters before anything is sent, naming the fields and what to write instead.
"""

from __future__ import annotations

import enum
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import Field

from odm import Document, Embedded, F, Q, QueryError
from odm.contrib.pytest import MonitoredDatabase
from tests.properties import server_property

pytestmark = pytest.mark.odm_drivers("pymongo")  # the checks are odm's, not the driver's


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class PmLine(Embedded):
    sku: str
    qty: int = 0
    tags: list[str] = []


class PmDoc(Document):
    k: int = 0
    colour: Colour = Colour.RED
    tags: list[str] = []
    lines: list[PmLine] = []

    class Meta:
        collection = "pm_docs"


def _line(sku: str, qty: int, *tags: str) -> dict[str, Any]:
    return {"sku": sku, "qty": qty, "tags": list(tags)}


#: Stored documents whose elements meet the filters' tests one by one, in several orders.
_DOCS: list[dict[str, Any]] = [
    {"k": 0, "colour": "red", "tags": ["z", "0", "c"],
     "lines": [_line("s", 5), _line("r", 1)]},
    {"k": 1, "colour": "red", "tags": ["x", "a", "y"],
     "lines": [_line("q", 0), _line("q", 0), _line("q", 0), _line("r", 3, "h")]},
    {"k": 2, "colour": "blue", "tags": ["a", "m", "b"],
     "lines": [_line("r", 1), _line("s", 5), _line("r", 3)]},
    {"k": 3, "colour": "red", "tags": [], "lines": []},
    {"k": 4, "colour": "red", "tags": ["c"], "lines": [_line("r", 2, "j", "h")]},
]


async def _reset(database: Any) -> list[dict[str, Any]]:
    """Store :data:`_DOCS` afresh; return them as stored, in ``k`` order."""
    collection = database[PmDoc._meta.collection]
    await collection.delete_many({})
    await collection.insert_many([dict(doc) for doc in _DOCS])
    return await _stored(database)


async def _stored(database: Any) -> list[dict[str, Any]]:
    return [d async for d in database[PmDoc._meta.collection].find({}, {"_id": 0}).sort("k", 1)]


# -- filters MongoDB's $ would misplace: refused before sending ---------------------------


@pytest.mark.parametrize(
    ("query", "update", "message"),
    [
        # lines' element is noted last: $ wrote tags.3 of k=1 (past its end) and tags.0 of k=2.
        (lambda: PmDoc.objects.filter(tags="a", lines__qty__gte=3),
         {"tags": F("tags").matched("W")}, r"also tests 'lines\.qty'"),
        (lambda: PmDoc.objects.filter(tags="a").filter(Q(lines__sku="r") | Q(lines__sku="t")),
         {"tags": F("tags").matched("W")}, r"also tests 'lines\.sku'"),
        (lambda: PmDoc.objects.filter(tags="a", lines__3__tags="h"),
         {"tags": F("tags").matched("W")}, r"also tests 'lines\.3\.tags'"),
        (lambda: PmDoc.objects.filter(lines__sku="r", tags__gte="y"),
         {"lines": F("lines").matched(qty=99)}, r"also tests 'tags'"),
        # Two tests of the written list, each met by an element of its own.
        (lambda: PmDoc.objects.filter(lines__sku="r", lines__qty__gte=2),
         {"lines": F("lines").matched(qty=99)}, r"tests 'lines' 2 times.*lines__elemmatch="),
        (lambda: PmDoc.objects.filter(tags__gte="a", tags__lte="m"),
         {"tags": F("tags").matched("W")}, r"tests 'tags' 2 times.*tags__elemmatch="),
        (lambda: PmDoc.objects.filter(tags__all=["a", "b"]),
         {"tags": F("tags").matched("W")}, r"tests 'tags' 2 times"),
        (lambda: PmDoc.objects.filter(tags="c", tags__exists=True),
         {"tags": F("tags").matched("W")}, r"tests 'tags' 2 times"),
    ],
    ids=["other-list-after", "other-list-or-of-values", "other-list-at-a-position",
         "scalar-list-other", "two-fields-of-one-element", "range", "all", "exists"],
)
async def test_a_filter_letting_dollar_take_another_position_is_refused_before_sending(
    monitored: MonitoredDatabase, query: Any, update: dict[str, Any], message: str
) -> None:
    before = await _reset(monitored.database)
    monitored.log.clear()
    with pytest.raises(QueryError, match=r"matched\(\) writes the element of .*" + message) as got:
        await query().update(**update)
    assert got.value.field == next(iter(update))
    assert "update was not sent" in str(got.value)
    assert monitored.log.names() == []
    assert await _stored(monitored.database) == before


@pytest.mark.parametrize(
    ("query", "written"),
    [
        # A negative test, a position, a whole-list test of another list: no element noted.
        (lambda: PmDoc.objects.filter(tags="a").exclude(lines__sku="z"), {1: 1, 2: 0}),
        (lambda: PmDoc.objects.filter(tags="a", lines__sku__ne="z"), {1: 1, 2: 0}),
        (lambda: PmDoc.objects.filter(tags="a", lines__size=4), {1: 1}),
        (lambda: PmDoc.objects.filter(tags="a", lines__3__sku="r"), {1: 1}),
        # Scalar fields (an enum too) hold no list.
        (lambda: PmDoc.objects.filter(tags="a", colour=Colour.BLUE, k__gte=1), {2: 0}),
        # One element meeting every test: one __elemmatch.
        (lambda: PmDoc.objects.filter(tags__elemmatch={"gte": "a", "lte": "m"}),
         {0: 2, 1: 1, 2: 0, 4: 0}),
        (lambda: PmDoc.objects.filter(tags="c").exclude(tags="q"), {0: 2, 4: 0}),
    ],
    ids=["exclude-other", "ne-other", "size-other", "position-other", "scalars",
         "elemmatch", "positive-and-negative"],
)
async def test_a_filter_binding_one_element_writes_it(
    odm_database: Any, query: Any, written: dict[int, int]
) -> None:
    """``written``: the document ``k`` -> the position of ``tags`` written."""
    before = await _reset(odm_database)
    assert await query().update(tags=F("tags").matched("W")) == len(written)
    after = await _stored(odm_database)
    for old, new in zip(before, after, strict=True):
        expected = list(old["tags"])
        if old["k"] in written:
            expected[written[old["k"]]] = "W"
        assert new == {**old, "tags": expected}


async def test_the_elemmatch_the_message_names_writes_the_element_meeting_both(
    odm_database: Any,
) -> None:
    await _reset(odm_database)
    qs = PmDoc.objects.filter(lines__elemmatch=Q(sku="r", qty__gte=2))
    assert await qs.update(lines=F("lines").matched(qty=99)) == 3
    qtys = {d["k"]: [line["qty"] for line in d["lines"]] for d in await _stored(odm_database)}
    assert qtys == {0: [5, 1], 1: [0, 0, 0, 99], 2: [1, 5, 99], 3: [], 4: [99]}


class PmLoose(Document):
    """Fields a list may hide in (free-form, a union with a list, a stored alias), and some
    it may not."""

    tags: list[str] = []
    counts: dict[str, int] = {}
    data: Any = None
    either: str | list[str] = ""
    labels: list[str] = Field(default=[], alias="lb")
    home: PmLine | None = None

    class Meta:
        collection = "pm_loose"


@pytest.mark.parametrize(
    ("filters", "refused"),
    [
        ({"counts__x": 1}, None),
        ({"home__sku": "r", "home__qty__gte": 1}, None),
        ({"data__x": 1}, "'data.x'"),
        ({"either": "q"}, "'either'"),
        ({"labels": "q"}, "'lb'"),
        ({"home__tags": "q"}, "'home.tags'"),
    ],
)
async def test_what_another_field_may_hold_is_read_from_the_model(
    odm_database: Any, filters: dict[str, Any], refused: str | None
) -> None:
    """A field that holds no list notes no element; one that holds, or may hold, a list
    (free-form, a union with a list) may: refused, by its stored name."""
    stored = {"tags": ["b", "a"], "counts": {"x": 1}, "data": {"x": [0, 0, 1]},
              "either": ["p", "p", "q"], "lb": ["p", "p", "q"],
              "home": {"sku": "r", "qty": 1, "tags": ["p", "p", "q"]}}
    await odm_database[PmLoose._meta.collection].insert_one(stored)
    query = PmLoose.objects.filter(tags="a", **filters)
    if refused is not None:
        with pytest.raises(QueryError, match=f"also tests {refused}"):
            await query.update(tags=F("tags").matched("W"))
        return
    assert await query.update(tags=F("tags").matched("W")) == 1
    assert (await PmLoose.objects.get()).tags == ["b", "W"]


# -- drawn: refused before any write, or every element written is one the filter matched ----


#: (a Q, the list it tests, a test of that list's element it must meet; None: a negative
#: test, met by the document, not by an element).
_TAG_VALUES = st.sampled_from(["a", "c", "m", "y"])
_TAG_TESTS = st.one_of(
    _TAG_VALUES.map(lambda v: (Q(tags=v), "tags", lambda e, v=v: e == v)),
    _TAG_VALUES.map(lambda v: (Q(tags__gte=v), "tags", lambda e, v=v: e >= v)),
    _TAG_VALUES.map(lambda v: (Q(tags__lte=v), "tags", lambda e, v=v: e <= v)),
    st.tuples(_TAG_VALUES, _TAG_VALUES).map(
        lambda p: (Q(tags__in=list(p)), "tags", lambda e, p=p: e in p)),
    st.tuples(_TAG_VALUES, _TAG_VALUES).map(
        lambda p: (Q(tags__elemmatch={"gte": p[0], "lte": p[1]}), "tags",
                   lambda e, p=p: p[0] <= e <= p[1])),
    _TAG_VALUES.map(lambda v: (~Q(tags=v), "tags", None)),
)
_SKUS = st.sampled_from(["r", "s", "z"])
_QTYS = st.sampled_from([2, 3, 5])
_LINE_TESTS = st.one_of(
    _SKUS.map(lambda v: (Q(lines__sku=v), "lines", lambda e, v=v: e["sku"] == v)),
    _QTYS.map(lambda n: (Q(lines__qty__gte=n), "lines", lambda e, n=n: e["qty"] >= n)),
    st.tuples(_SKUS, _QTYS).map(
        lambda p: (Q(lines__elemmatch=Q(sku=p[0], qty__gte=p[1])), "lines",
                   lambda e, p=p: e["sku"] == p[0] and e["qty"] >= p[1])),
    st.sampled_from(["h", "j"]).map(
        lambda v: (Q(lines__tags=v), "lines", lambda e, v=v: v in e["tags"])),
    _SKUS.map(lambda v: (~Q(lines__sku=v), "lines", None)),
)
_TESTS = st.lists(_TAG_TESTS | _LINE_TESTS, min_size=1, max_size=3)


def _element_written(before: list[Any], after: list[Any]) -> list[int]:
    """The positions of ``after`` that differ from ``before`` (one past its end counts)."""
    changed = [i for i, (b, a) in enumerate(zip(before, after, strict=False)) if b != a]
    return changed + list(range(len(before), len(after)))


@server_property(max_examples=30, derandomize=True)
@given(tests=_TESTS, target=st.sampled_from(["tags", "lines"]))
@example(tests=[(Q(tags="a"), "tags", lambda e: e == "a"),
                (Q(lines__qty__gte=3), "lines", None)], target="tags")
@example(tests=[(Q(lines__sku="r"), "lines", lambda e: e["sku"] == "r"),
                (Q(lines__qty__gte=2), "lines", lambda e: e["qty"] >= 2)], target="lines")
async def test_matched_is_refused_first_or_writes_an_element_the_filter_matched(
    monitored: MonitoredDatabase, tests: list[Any], target: str
) -> None:
    before = await _reset(monitored.database)
    q = Q()
    for condition, _, _ in tests:
        q &= condition
    update = {"tags": F("tags").matched("W")} if target == "tags" else {
        "lines": F("lines").matched(qty=99)}
    monitored.log.clear()
    try:
        await PmDoc.objects.filter(q).update(**update)
    except QueryError:
        assert "update" not in monitored.log.names()
        assert await _stored(monitored.database) == before
        return
    element_tests = [meets for _, on, meets in tests if on == target and meets is not None]
    for old, new in zip(before, await _stored(monitored.database), strict=True):
        for position in _element_written(old[target], new[target]):
            assert position < len(old[target]), (old, new)  # not past the end
            assert all(meets(old[target][position]) for meets in element_tests), (old, new)
