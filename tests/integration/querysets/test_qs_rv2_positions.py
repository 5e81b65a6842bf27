"""List positions read by a queryset, against a Python oracle over the stored documents.

Free-form values (``dict[str, Any]``, ``Any``) hold whatever a request sent: lists, nested
lists, dicts with digit keys (``"0"``, ``"00"``, ``"10"``), scalars, null, nothing. A digit
part of a path is the element of a list, the key of a dict, nothing elsewhere; each entry
point (``values()``, ``filter()``, ``exclude()``, null tests, aggregates, ``F()``,
``order_by()``) must read the same thing.
"""

from __future__ import annotations

from collections.abc import Callable, MutableSequence
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import Field

from odm import Document, F, QueryError
from odm.aggregates import Count, Max, Min, Sum
from odm.contrib.pytest import MonitoredDatabase
from tests.properties import server_property

pytestmark = pytest.mark.odm_drivers("pymongo")

EXAMPLES = server_property(max_examples=40, database=None)


class Rv2Free(Document):
    name: str
    n: int | None = None
    nums: list[int | None] | None = None
    meta: dict[str, Any] = {}
    extra: Any = None

    class Meta:
        collection = "rv2_free"


#: A field or key left out of the stored document.
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()


class Gathered(list[Any]):
    """The values a path read in each element of a list (``meta__l__k`` on a list ``l``):
    MongoDB's filters test each, ``values()`` gives them as a list."""


class Searched(list[Any]):
    """A list a path reached by a key (``meta__d__10`` on a dict ``d``): MongoDB's filters
    test it and each of its elements, as ``tags="x"`` tests each tag. A list reached by a
    position is a value whose elements are not searched."""


SCALARS = st.sampled_from([0, 1, 2, "a", "b", None])
#: Keys of the dicts that are not in a list: digit keys a list position would read.
KEYS = st.sampled_from(["0", "00", "1", "10", "k"])
#: Keys of the dicts in a list. MongoDB's filters read ``l.0`` as ``l``'s position 0 and
#: also as the key ``0`` of each of its elements (documented: values() reads the element).
ELEMENT_KEYS = st.sampled_from(["00", "k"])
INNER = SCALARS | st.lists(SCALARS, max_size=3) | st.dictionaries(KEYS, SCALARS, max_size=2)
KEYED = st.dictionaries(ELEMENT_KEYS, SCALARS | st.lists(SCALARS, max_size=2), max_size=2)
IN_LIST = SCALARS | st.lists(SCALARS | KEYED, max_size=3) | KEYED
VALUES = (
    SCALARS
    | st.just(MISSING)
    | st.lists(IN_LIST, max_size=3)
    | st.dictionaries(KEYS, INNER, max_size=3)
)
NUMS = st.just(MISSING) | st.none() | st.lists(st.integers(-2, 2) | st.none(), max_size=3)


@st.composite
def documents(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Up to four documents named d0, d1...; MISSING values left out."""
    count = draw(st.integers(1, 4))
    docs = []
    for index in range(count):
        doc = {
            "name": f"d{index}",
            "n": draw(st.just(MISSING) | st.integers(-2, 2)),
            "nums": draw(NUMS),
            "meta": {"l": draw(VALUES)},
            "extra": draw(VALUES),
        }
        doc["meta"] = {k: v for k, v in doc["meta"].items() if v is not MISSING}
        docs.append({k: v for k, v in doc.items() if v is not MISSING})
    return docs


def is_position(part: str, declared: bool) -> bool:
    """A list position: ASCII digits, without a leading zero in a free-form value (where
    ``00`` stays a key)."""
    digits = part.isascii() and part.isdigit()
    return digits and (declared or (part.lstrip("0") or "0") == part)


def picked(value: Any, part: str, declared: bool) -> Any:
    """Position ``part`` of a list, key ``part`` of a dict, MISSING elsewhere."""
    if isinstance(value, list):
        if not is_position(part, declared):
            return MISSING
        index = int(part)
        return value[index] if index < len(value) else MISSING
    if isinstance(value, dict):
        found = value.get(part, MISSING)
        return Searched(found) if isinstance(found, list) else found
    return MISSING


def read(doc: dict[str, Any], path: str) -> Any:
    """What ``path`` reads in ``doc``: a list's element, a dict's key, MISSING where nothing
    is; a key met in a list is read in each element (a :class:`Gathered` list, as
    ``"$l.k"`` gathers it), and a position after it in each gathered value."""
    declared = path.startswith(("nums__", "grid__"))
    value: Any = doc
    for part in path.split("__"):
        if isinstance(value, Gathered):
            if is_position(part, declared):
                found = (picked(v, part, declared) for v in value)
            else:
                found = (
                    picked(v, part, declared) if isinstance(v, dict) else MISSING for v in value
                )
            value = Gathered(v for v in found if v is not MISSING)
        elif isinstance(value, list) and not is_position(part, declared):
            value = Gathered(
                picked(v, part, declared) for v in value if isinstance(v, dict) and part in v
            )
        else:
            value = picked(value, part, declared)
    return value


def candidates(value: Any) -> list[Any]:
    """The values MongoDB's filters test for a read value."""
    if isinstance(value, Gathered):
        return [c for v in value for c in candidates(v)]
    if isinstance(value, Searched):
        return [list(value), *value]
    return [value]


def null(value: Any) -> bool:
    """A value null or missing (a searched list: one of its elements null)."""
    if isinstance(value, Searched):
        return None in value
    return value is None or value is MISSING


def equal(value: Any, wanted: Any) -> bool:
    """MongoDB's equality with a scalar: of one value it tests (see :func:`candidates`)."""
    return any(type(c) is type(wanted) and c == wanted for c in candidates(value))


def greater(value: Any, wanted: Any) -> bool:
    """``$gt``: only values of the same kind compare (ints with ints, text with text)."""
    return any(type(c) is type(wanted) and c > wanted for c in candidates(value))


def shown(value: Any) -> Any:
    """A read value as a row shows it."""
    if isinstance(value, list):
        return [shown(v) for v in value] if isinstance(value, Gathered) else list(value)
    return None if value is MISSING else value


PATHS = [
    "nums__0",
    "nums__1",
    "nums__01",
    "nums__9",
    "meta__l__0",
    "meta__l__1",
    "meta__l__10",
    "meta__l__00",
    "meta__l__0__0",
    "meta__l__0__k",
    "meta__l__1__1",
    "meta__l__0__00",
    "meta__l__k__0",
    "meta__l__00__1",
    "meta__l__k__1",
    "extra__0",
    "extra__1__0",
    "extra__10",
    "extra__k__0",
    "extra__0__k__0",
    "extra__0__k__1",
    "meta__l__1__k__0",
]

#: Each filter of a test on a path, with what it keeps of a read value.
TESTS: dict[str, tuple[Callable[[str, Any], dict[str, Any]], Callable[[Any, Any], bool]]] = {
    "exact": (lambda p, v: {p: v}, equal),
    "gt": (lambda p, v: {f"{p}__gt": v}, greater),
    "none": (lambda p, v: {p: None}, lambda x, v: null(x)),
    "isnull": (lambda p, v: {f"{p}__isnull": True}, lambda x, v: null(x)),
    "notnull": (lambda p, v: {f"{p}__isnull": False}, lambda x, v: not null(x)),
    "ne_none": (lambda p, v: {f"{p}__ne": None}, lambda x, v: not null(x)),
    "ne": (lambda p, v: {f"{p}__ne": v}, lambda x, v: not equal(x, v)),
    "in": (lambda p, v: {f"{p}__in": [None, v]}, lambda x, v: null(x) or equal(x, v)),
    "nin": (lambda p, v: {f"{p}__nin": [None, v]}, lambda x, v: not (null(x) or equal(x, v))),
    "in_plain": (lambda p, v: {f"{p}__in": [v]}, equal),
}


class Database:
    """The test's database, shown short in hypothesis's reports."""

    def __init__(self, monitored: MonitoredDatabase) -> None:
        self.database = monitored.database

    def __getitem__(self, name: str) -> Any:
        return self.database[name]

    def __repr__(self) -> str:
        return "<database>"


@pytest.fixture
def database(monitored: MonitoredDatabase) -> Database:
    """The plugin's database of this test."""
    return Database(monitored)


async def store(database: Any, docs: list[dict[str, Any]]) -> None:
    """Replace the collection's documents with ``docs`` (as sent, nothing validated)."""
    collection = database[Rv2Free._meta.collection]
    await collection.delete_many({})
    await collection.insert_many([dict(doc) for doc in docs])


def names(docs: list[dict[str, Any]], keep: Callable[[dict[str, Any]], bool]) -> list[str]:
    return [doc["name"] for doc in docs if keep(doc)]


@EXAMPLES
@example(
    docs=[{"name": "d0", "meta": {"l": [{"k": [1, 2]}, {"k": [3]}]}}],
    path="meta__l__k__0",
    test="exact",
    value=3,
)
@example(docs=[{"name": "d0", "extra": [{"k": [1]}, 5]}], path="extra__k__0", test="gt", value=0)
@example(
    docs=[{"name": "d0", "extra": [[{"k": [1, 2]}, {"k": [3]}]]}],
    path="extra__0__k__0",
    test="exact",
    value=3,
)
@example(docs=[{"name": "d0", "meta": {"l": {"0": 1}}}], path="meta__l__0", test="exact", value=1)
@example(docs=[{"name": "d0", "meta": {"l": {"0": None}}}], path="meta__l__0", test="none", value=1)
@example(docs=[{"name": "d0", "meta": {"l": [[1, 2]]}}], path="meta__l__0", test="exact", value=1)
@example(docs=[{"name": "d0", "meta": {"l": [[1, 2]]}}], path="meta__l__0", test="gt", value=0)
@example(docs=[{"name": "d0", "meta": {"l": [[None]]}}], path="meta__l__0", test="none", value=0)
@example(docs=[{"name": "d0", "meta": {"l": [[None]]}}], path="meta__l__0", test="in", value=0)
@given(
    docs=documents(),
    path=st.sampled_from(PATHS),
    test=st.sampled_from(sorted(TESTS)),
    value=st.sampled_from([0, 1, 2, "a", "b"]),
)
async def test_filter_exclude_and_values_read_the_same_element(
    database: Database, docs: list[dict[str, Any]], path: str, test: str, value: Any
) -> None:
    if path.startswith("nums__"):
        value = value if isinstance(value, int) else 1
    await store(database, docs)
    held = {doc["name"]: read(doc, path) for doc in docs}
    rows = await Rv2Free.objects.values_list("name", path).order_by("name")
    assert dict(rows) == {name: shown(x) for name, x in held.items()}
    # A null test on gathered values is MongoDB's (any of them null, or none there), as on
    # a path through a declared list: only the tests of a value are compared for those.
    compared = [
        doc
        for doc in docs
        if not isinstance(held[doc["name"]], Gathered) or test in ("exact", "gt", "in_plain")
    ]
    condition, keep = TESTS[test]
    expected = [doc["name"] for doc in compared if keep(held[doc["name"]], value)]
    names = {doc["name"] for doc in compared}
    qs = Rv2Free.objects.order_by("name")
    found = await qs.filter(**condition(path, value)).values_list("name", flat=True)
    assert [name for name in found if name in names] == expected
    kept = await qs.exclude(**condition(path, value)).values_list("name", flat=True)
    assert [name for name in kept if name in names] == [
        doc["name"] for doc in compared if doc["name"] not in expected
    ]


# -- a declared list reached at a position: its elements are what a lookup tests -----------


class Rv2Grid(Document):
    name: str
    grid: list[list[int | None]] | None = None
    pair: tuple[list[str], int] | None = None

    class Meta:
        collection = "rv2_grid"


INNER = st.lists(st.integers(0, 3) | st.none(), max_size=3)
GRID = st.just(MISSING) | st.none() | st.lists(INNER, max_size=3)


@st.composite
def grids(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Up to four documents whose ``grid`` is missing, null or a list of lists."""
    docs = []
    for index in range(draw(st.integers(1, 4))):
        doc = {"name": f"g{index}", "grid": draw(GRID)}
        docs.append({k: v for k, v in doc.items() if v is not MISSING})
    return docs


def elements_of(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


#: Each lookup on ``grid__<position>`` (a list of ints): its filter, and what it keeps of
#: the list there, as a Python list's test reads it (None: null or missing).
LIST_TESTS: dict[str, tuple[dict[str, Any], Callable[[Any], bool]]] = {
    "exact": ({"": 1}, lambda e: 1 in elements_of(e)),
    "exact_list": ({"": [1, 2]}, lambda e: e == [1, 2]),
    "ne": ({"__ne": 1}, lambda e: 1 not in elements_of(e)),
    "gt": ({"__gt": 1}, lambda e: any(x is not None and x > 1 for x in elements_of(e))),
    "lte": ({"__lte": 0}, lambda e: any(x is not None and x <= 0 for x in elements_of(e))),
    "range": ({"__range": (1, 2)}, lambda e: any(x in (1, 2) for x in elements_of(e))),
    "in": ({"__in": [2, 3]}, lambda e: any(x in (2, 3) for x in elements_of(e))),
    "in_none": ({"__in": [None, 3]}, lambda e: e is None or 3 in elements_of(e)),
    "nin": ({"__nin": [2, 3]}, lambda e: not any(x in (2, 3) for x in elements_of(e))),
    "nin_none": ({"__nin": [None, 3]}, lambda e: e is not None and 3 not in elements_of(e)),
    "contains": ({"__contains": 0}, lambda e: 0 in elements_of(e)),
    "all": ({"__all": [0, 1]}, lambda e: {0, 1} <= set(elements_of(e))),
    "size": ({"__size": 2}, lambda e: len(elements_of(e)) == 2 and e is not None),
    "none": ({"": None}, lambda e: e is None),
    "isnull": ({"__isnull": False}, lambda e: e is not None),
}


@EXAMPLES
@example(docs=[{"name": "g0", "grid": [[0, 1], [2]]}], position="0", test="exact")
@example(docs=[{"name": "g0", "grid": [[0, 1], [2]]}], position="01", test="gt")
@example(docs=[{"name": "g0", "grid": [[3], [1]]}], position="0", test="nin_none")
@given(
    docs=grids(),
    position=st.sampled_from(["0", "1", "01", "7"]),
    test=st.sampled_from(sorted(LIST_TESTS)),
)
async def test_a_list_at_a_position_has_its_elements_tested(
    database: Database, docs: list[dict[str, Any]], position: str, test: str
) -> None:
    """``grid__0=1`` is "grid[0] holds 1", as ``tags="x"`` is "tags holds x": MongoDB's
    filters never search a list they reach by a position (``{"grid.0": 1}`` matched no
    document)."""
    collection = database[Rv2Grid._meta.collection]
    await collection.delete_many({})
    await collection.insert_many([dict(doc) for doc in docs])
    path = f"grid__{position}"
    held = {doc["name"]: read(doc, path) for doc in docs}
    held = {name: None if e is MISSING else e for name, e in held.items()}
    rows = await Rv2Grid.objects.order_by("name").values_list("name", path)
    assert dict(rows) == held
    suffix_value, keep = LIST_TESTS[test]
    [(suffix, value)] = suffix_value.items()
    condition = {path + suffix: value}
    expected = [name for name, e in held.items() if keep(e)]
    qs = Rv2Grid.objects.order_by("name")
    assert await qs.filter(**condition).values_list("name", flat=True) == expected
    kept = await qs.exclude(**condition).values_list("name", flat=True)
    assert kept == [name for name in held if name not in expected]


async def test_text_lookups_on_a_list_at_a_position_test_its_elements(
    database: Database,
) -> None:
    await Rv2Grid(name="a", pair=(["ab", "c"], 1)).insert()
    await Rv2Grid(name="b", pair=(["x"], 2)).insert()
    qs = Rv2Grid.objects.order_by("name")
    for condition, expected in (
        ({"pair__0__startswith": "a"}, ["a"]),
        ({"pair__0__contains": "c"}, ["a"]),
        ({"pair__0__icontains": "X"}, ["b"]),
        ({"pair__0__iexact": "AB"}, ["a"]),
        ({"pair__0": "x"}, ["b"]),
        ({"pair__0": ["x"]}, ["b"]),
        ({"pair__0__ne": "c"}, ["b"]),
        ({"pair__1__gt": 1}, ["b"]),
    ):
        assert await qs.filter(**condition).values_list("name", flat=True) == expected, condition


# -- totals, F() comparisons and orderings over a position, with nulls and short lists ------


@st.composite
def numbered(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Up to five documents whose ``nums`` (and ``n``) are missing, null or short lists
    holding nulls."""
    docs = []
    for index in range(draw(st.integers(1, 5))):
        doc = {
            "name": f"d{index}",
            "n": draw(st.just(MISSING) | st.integers(-2, 2)),
            "nums": draw(NUMS),
            "meta": {"l": draw(NUMS)},
        }
        doc["meta"] = {k: v for k, v in doc["meta"].items() if v is not MISSING}
        docs.append({k: v for k, v in doc.items() if v is not MISSING})
    return docs


def element(doc: dict[str, Any], path: str) -> Any:
    """The int (or None) at ``path`` in ``doc``: these paths read no gathered value."""
    value = read(doc, path)
    return None if value is MISSING else value


@EXAMPLES
@given(
    docs=numbered(),
    first=st.sampled_from(["nums__0", "nums__01", "meta__l__0", "meta__l__2"]),
    second=st.sampled_from(["nums__1", "meta__l__1", "n"]),
)
async def test_totals_f_and_orderings_read_the_element(
    database: Database, docs: list[dict[str, Any]], first: str, second: str
) -> None:
    await store(database, docs)
    held = [v for doc in docs if (v := element(doc, first)) is not None]
    totals = await Rv2Free.objects.aggregate(
        top=Max(first),
        low=Min(first),
        total=Sum(first),
        count=Count(first),
        distinct=Count(first, distinct=True),
    )
    assert totals == {
        "top": max(held, default=None),
        "low": min(held, default=None),
        "total": sum(held) if held else None,
        "count": len(held),
        "distinct": len(set(held)),
    }
    qs = Rv2Free.objects.order_by("name")

    def compared(keep: Callable[[int, int], bool]) -> list[str]:
        pairs = [(doc["name"], element(doc, first), element(doc, second)) for doc in docs]
        return [name for name, a, b in pairs if a is not None and b is not None and keep(a, b)]

    lesser = await qs.filter(**{f"{first}__lt": F(second)}).values_list("name", flat=True)
    assert lesser == compared(lambda a, b: a < b)
    more = await qs.filter(**{f"{second}__lte": F(first) - 1}).values_list("name", flat=True)
    assert more == compared(lambda a, b: b <= a - 1)
    unknown = await qs.exclude(**{f"{first}__lt": F(second)}).values_list("name", flat=True)
    assert unknown == [doc["name"] for doc in docs if doc["name"] not in lesser]

    def ordered(descending: bool) -> list[str]:
        keyed = sorted(docs, key=lambda doc: doc["name"])
        held_first = [doc for doc in keyed if element(doc, first) is not None]
        nulls = [doc["name"] for doc in keyed if element(doc, first) is None]
        held_first.sort(key=lambda doc: element(doc, first), reverse=descending)
        names = [doc["name"] for doc in held_first]
        return names + nulls if descending else nulls + names

    up = await Rv2Free.objects.order_by(first, "name").values_list("name", flat=True)
    assert up == ordered(descending=False)
    down = await Rv2Free.objects.order_by(f"-{first}", "name").values_list("name", flat=True)
    assert down == ordered(descending=True)


# -- what is refused, naming the culprit, before anything is sent ---------------------------


class Rv2Named(Document):
    name: str = ""
    stock: int = Field(default=0, alias="zstock")
    seq: MutableSequence[int] = []
    meta: dict[str, Any] = {}

    class Meta:
        collection = "rv2_named"
        polymorphic = True


class Rv2NamedSub(Rv2Named):
    rank: int = 0


@pytest.mark.parametrize(
    "build",
    [
        lambda: Rv2Named.objects.filter(seq=3),
        lambda: Rv2Named.objects.filter(seq__in=[3]),
        lambda: Rv2Named.objects.exclude(seq__gt=3),
    ],
    ids=["exact", "in", "gt"],
)
def test_a_single_value_for_a_sequence_compared_whole_names_the_field(build: Any) -> None:
    """A ``MutableSequence[int]`` is compared as a whole (odm reads no element of it): a
    single value is refused, saying so, where pydantic's "Input should be a valid list"
    was all the error said."""
    with pytest.raises(QueryError, match=r"'seq' .* is compared as a whole") as refused:
        build()
    assert refused.value.field == "seq"


async def test_a_sequence_compared_whole_takes_a_list(database: Database) -> None:
    await Rv2Named(name="a", seq=[3, 4]).insert()
    assert await Rv2Named.objects.filter(seq=[3, 4]).values_list("name", flat=True) == ["a"]


@pytest.mark.parametrize(
    "fields",
    [("c",), ("name", "c"), ("stock", "name", "c"), (), ("c", "name", "stock", "meta__k")],
    ids=["only_annotation", "other_field", "added_field", "every_field", "more"],
)
def test_values_after_annotate_keeps_the_groups_or_is_refused(fields: tuple[str, ...]) -> None:
    """``values("stock").annotate(c=Count()).values("c")`` grouped every document as one
    (a total count, where Django keeps the groups by ``stock``)."""
    grouped = Rv2Named.objects.values("stock").annotate(c=Count())
    with pytest.raises(QueryError, match="after annotate\\(\\) names the fields the groups"):
        grouped.values(*fields)
    with pytest.raises(QueryError, match="after annotate\\(\\) names the fields the groups"):
        grouped.values_list(*fields)


async def test_values_after_annotate_may_reorder_the_groups(database: Database) -> None:
    for name, stock in (("a", 1), ("b", 1), ("c", 2)):
        await Rv2Named(name=name, stock=stock).insert()
    grouped = Rv2Named.objects.values("stock").annotate(c=Count()).order_by("stock")
    assert await grouped.values("c", "stock") == [{"c": 2, "stock": 1}, {"c": 1, "stock": 2}]
    assert await grouped.values_list("stock", "c") == [(1, 2), (2, 1)]


async def test_annotation_names_that_hide_nothing_are_taken(database: Database) -> None:
    """The stored key of a field (``zstock``, its alias), ``pk`` and ``count`` name no field
    a filter or an ordering reads: an annotation may take them, and ``filter(stock=...)``
    still filters the documents. A field's name, a subclass's included, is refused."""
    await Rv2Named(name="a", stock=1).insert()
    await Rv2NamedSub(name="b", stock=5, rank=2).insert()
    grouped = Rv2Named.objects.values("name").annotate(
        zstock=Max("stock"), pk=Count(), count=Count()
    )
    assert await grouped.filter(stock=1) == [{"name": "a", "zstock": 1, "pk": 1, "count": 1}]
    assert await grouped.filter(zstock=5).values_list("name", flat=True) == ["b"]
    for name in ("stock", "rank", "id", "name", "meta", "seq"):
        with pytest.raises(QueryError, match=f"annotation '{name}' conflicts with a field"):
            Rv2Named.objects.values("meta__k").annotate(**{name: Count()})


async def test_a_path_too_deep_to_read_is_refused_unsent(monitored: MonitoredDatabase) -> None:
    """Each list position an aggregation reads is a ``$let``: sixty positions in a free-form
    value (``meta__0__0...``) made the server refuse the command, untyped."""
    longest = "meta__" + "__".join(["0"] * 29)
    deeper = longest + "__0"
    monitored.log.clear()
    for build in (
        lambda p: Rv2Named.objects.values(p),
        lambda p: Rv2Named.objects.values("name").annotate(m=Max(p)),
        lambda p: Rv2Named.objects.filter(stock__lt=F(p)),
        lambda p: Rv2Named.objects.filter(**{f"{p}__gt": F("stock") + 1}),
    ):
        with pytest.raises(QueryError, match=r"nest .* levels deep") as refused:
            build(deeper)
        assert refused.value.field == deeper
        build(longest)  # accepted
    with pytest.raises(QueryError, match=r"nest .* levels deep"):
        await Rv2Named.objects.aggregate(m=Sum(deeper))
    assert monitored.log.names() == []
    await Rv2Named(name="a", meta={"0": [[1]]}).insert()
    assert await Rv2Named.objects.aggregate(m=Sum(F(longest) * 2), c=Count(longest)) == {
        "m": None,
        "c": 0,
    }
    assert await Rv2Named.objects.values_list(longest, flat=True) == [None]
