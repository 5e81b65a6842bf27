"""Lists of lists: MongoDB looks one level into an array, in filters and in aggregation field
paths alike. A lookup on a ``list[list[int]]`` tests its elements (each a ``list[int]``), a
value that cannot be one is refused naming the field, and every reading of a path agrees
with the filter on it (or is refused by name) where lists sit inside lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from odm import Document, Embedded, QueryError
from odm.aggregates import Max
from odm.contrib.pytest import MonitoredDatabase
from tests.properties import server_property

pytestmark = pytest.mark.odm_drivers("pymongo")

EXAMPLES = server_property(max_examples=30, database=None)


class Ll21Cell(Embedded):
    name: str = ""
    extra: dict[str, Any] = {}
    tags: list[list[str]] = []


class Ll21Grid(Document):
    name: str
    grid: list[list[int]] | None = None
    cube: list[list[list[int]]] = []
    cells: list[Ll21Cell] = []
    matrix: list[list[Ll21Cell]] = []
    extra: Any = None

    class Meta:
        collection = "ll21_grid"


# -- a single value for the elements of a list of lists: refused, naming the field ---------


@pytest.mark.parametrize(
    ("condition", "field"),
    [
        ({"grid": 1}, "grid"),
        ({"grid__ne": 1}, "grid"),
        ({"grid__in": [1, 2]}, "grid"),
        ({"grid__nin": [1]}, "grid"),
        ({"grid__contains": 1}, "grid"),
        ({"grid__all": [1]}, "grid"),
        ({"cells__tags": "a"}, "cells__tags"),
        ({"cube__0": 1}, "cube__0"),
    ],
    ids=["exact", "ne", "in", "nin", "contains", "all", "through_list", "at_position"],
)
def test_a_single_value_for_inner_lists_is_refused(
    condition: dict[str, Any], field: str
) -> None:
    """``{"grid": 1}`` compares 1 with each inner list and matched no document, silently."""
    with pytest.raises(QueryError, match=r"are lists \(list\[.*\]\), so it takes one of them"):
        Ll21Grid.objects.filter(**condition)
    try:
        Ll21Grid.objects.exclude(**condition)
    except QueryError as refused:
        assert refused.field == field
    else:
        raise AssertionError("accepted")


@pytest.mark.parametrize("lookup", ["gt", "lte", "startswith", "icontains", "regex"])
def test_an_ordering_or_text_lookup_on_inner_lists_is_refused(lookup: str) -> None:
    with pytest.raises(QueryError, match=f"lookup '{lookup}' does not apply to 'grid'"):
        Ll21Grid.objects.filter(**{f"grid__{lookup}": 1})


# -- a list value: the whole list, or one of its elements, as a Python oracle reads it -----

ROW = st.lists(st.integers(0, 2), max_size=2)
GRIDS = st.lists(st.none() | st.lists(ROW, max_size=3), min_size=1, max_size=4)
VALUES = st.sampled_from([[], [1], [1, 2], [[1]], [[1], []], [[]]])


def holds(grid: Any, value: Any) -> bool:
    """MongoDB's equality on a list field: the whole list, or one of its elements."""
    return isinstance(grid, list) and (grid == value or value in grid)


#: Each lookup: its condition on a path, and what it keeps of the list there.
LIST_TESTS: dict[str, tuple[Callable[[str, Any], dict[str, Any]], Callable[[Any, Any], bool]]] = {
    "exact": (lambda p, v: {p: v}, holds),
    "ne": (lambda p, v: {f"{p}__ne": v}, lambda g, v: not holds(g, v)),
    "in": (lambda p, v: {f"{p}__in": [v, [0, 0]]}, lambda g, v: holds(g, v) or holds(g, [0, 0])),
    "contains": (lambda p, v: {f"{p}__contains": v}, lambda g, v: holds(g, v)),
    "nin": (
        lambda p, v: {f"{p}__nin": [v, [0, 0]]},
        lambda g, v: not (holds(g, v) or holds(g, [0, 0])),
    ),
    "all": (lambda p, v: {f"{p}__all": [v, [0]]}, lambda g, v: holds(g, v) and holds(g, [0])),
}
#: The lookups taking elements only (an inner list), not the whole list.
ELEMENT_TESTS = ("in", "nin", "contains", "all")


@EXAMPLES
@example(grids=[[[1, 2]], [[1], [2]]], value=[1, 2], test="exact")
@example(grids=[[[1, 2]], [[1], [2]]], value=[1, 2], test="ne")
@example(grids=[[], [[]], [[0]]], value=[], test="exact")
@example(grids=[[], [[]], [[0]]], value=[], test="in")
@example(grids=[[], [[]], [[0]]], value=[], test="nin")
@example(grids=[[], [[]], [[0]]], value=[], test="contains")
@example(grids=[[], [[0], []], [[0]]], value=[], test="all")
@given(grids=GRIDS, value=VALUES, test=st.sampled_from(sorted(LIST_TESTS)))
async def test_a_list_value_is_the_whole_list_or_an_element(
    monitored: MonitoredDatabase, grids: list[Any], value: Any, test: str
) -> None:
    """``grid=[1, 2]`` was refused ("Input should be a valid list"): it is an element. At a
    position, ``in``/``nin``/``contains``/``all`` with ``[]`` tested the elements only,
    where without one ``[]`` is also the empty list itself."""
    if test in ELEMENT_TESTS and value and isinstance(value[0], list):
        return  # these take elements, not the whole list
    collection = monitored.database[Ll21Grid._meta.collection]
    await collection.delete_many({})
    docs = [{"name": f"g{i}", "grid": g, "cube": [g or []]} for i, g in enumerate(grids)]
    await collection.insert_many([dict(doc) for doc in docs])
    condition, keep = LIST_TESTS[test]
    qs = Ll21Grid.objects.order_by("name")
    found = await qs.filter(**condition("grid", value)).values_list("name", flat=True)
    assert found == [doc["name"] for doc in docs if keep(doc["grid"], value)]
    # The same test on a list of lists reached by a position (``cube__0``).
    found = await qs.filter(**condition("cube__0", value)).values_list("name", flat=True)
    assert found == [doc["name"] for doc in docs if keep(doc["cube"][0], value)]


# -- a sub-field of the elements of a list inside a list: MongoDB reads none ---------------


async def test_a_field_of_the_elements_of_inner_lists_is_refused(
    monitored: MonitoredDatabase,
) -> None:
    """``{"matrix.name": "x"}`` matches no ``[[{"name": "x"}]]``: it was accepted."""
    for build in (
        lambda: Ll21Grid.objects.filter(matrix__name="x"),
        lambda: Ll21Grid.objects.values("matrix__name"),
        lambda: Ll21Grid.objects.order_by("matrix__tags"),
    ):
        with pytest.raises(QueryError, match="are lists: MongoDB reads no field") as refused:
            build()
        assert refused.value.field in ("matrix__name", "matrix__tags")
    await Ll21Grid(name="a", matrix=[[Ll21Cell(name="x")]]).insert()
    qs = Ll21Grid.objects.filter(matrix__0__name="x")
    assert await qs.values_list("name", "matrix__0__name") == [("a", ["x"])]


# -- a position in a free-form value in each element of a declared list --------------------


async def test_a_free_form_position_in_each_element_is_refused_where_read(
    monitored: MonitoredDatabase,
) -> None:
    """``values("cells__extra__0")`` read a key ``0`` of each item's ``extra`` (``None`` for
    a list), where ``filter(cells__extra__0=5)`` matched its first element."""
    await Ll21Grid(name="a", cells=[Ll21Cell(extra={"l": 1}), Ll21Cell()]).insert()
    collection = monitored.database[Ll21Grid._meta.collection]
    await collection.insert_one({"name": "b", "cells": [{"extra": [5, 6]}]})
    for build in (
        lambda: Ll21Grid.objects.values("cells__extra__0"),
        lambda: Ll21Grid.objects.values_list("name", "cells__extra__l__0"),
        lambda: Ll21Grid.objects.aggregate(m=Max("cells__extra__0")),
    ):
        with pytest.raises(QueryError, match="takes a list position in each element"):
            await build()
    found = await Ll21Grid.objects.filter(cells__extra__0=5).values_list("name", flat=True)
    assert found == ["b"]


# -- a key read in each element, then in a list there, then a position ---------------------


def gather(values: list[Any], key: str) -> list[Any]:
    """The values MongoDB's filters read at ``key`` in each gathered value: a document's,
    or that of each document of a list (one level)."""
    found = []
    for value in values:
        inner = value if isinstance(value, list) else [value]
        found += [v[key] for v in inner if isinstance(v, dict) and key in v]
    return found


def first_of_each(values: list[Any]) -> list[Any]:
    return [v[0] for v in values if isinstance(v, list) and v]


LEAF = st.lists(st.integers(5, 7), max_size=2) | st.integers(5, 7)
B = st.fixed_dictionaries({"b": LEAF})
A = st.fixed_dictionaries({"a": st.lists(B | st.lists(B, max_size=1), max_size=2) | B})
EXTRAS = st.lists(st.lists(A, max_size=2), min_size=1, max_size=3)


@EXAMPLES
@example(extras=[[{"a": [{"b": [7]}]}], [{"a": [[{"b": [7]}]]}]])
@given(extras=EXTRAS)
async def test_a_key_in_a_list_inside_gathered_values_reads_as_the_filter(
    monitored: MonitoredDatabase, extras: list[Any]
) -> None:
    """``values("extra__a__b__0")`` on ``[{"a": [{"b": [7]}]}]`` was ``[]`` where
    ``filter(extra__a__b__0=7)`` matched: each ``a`` gathered is a list, whose documents
    were skipped."""
    collection = monitored.database[Ll21Grid._meta.collection]
    await collection.delete_many({})
    docs = [{"name": f"e{i}", "extra": extra} for i, extra in enumerate(extras)]
    await collection.insert_many([dict(doc) for doc in docs])
    held = {doc["name"]: first_of_each(gather(gather(doc["extra"], "a"), "b")) for doc in docs}
    rows = await Ll21Grid.objects.order_by("name").values_list("name", "extra__a__b__0")
    assert dict(rows) == held
    qs = Ll21Grid.objects.order_by("name")
    found = await qs.filter(extra__a__b__0=7).values_list("name", flat=True)
    assert found == [name for name, values in held.items() if 7 in values]
