"""``count()`` of a queryset ordered across a reference, until this fix.

``Book.objects.order_by("shelf__name").count()`` (sliced or filtered too) raised a bare
``AssertionError`` (``AttributeError`` under ``python -O``): the count chose a pipeline for the
join the ordering needs, then dropped the ordering, and with it the only join, so the query
compiled to a ``find``. The count now chooses on the unordered query: the order never changes
how many rows there are (a slice ``[a:b]`` of ``n`` rows keeps ``min(b, n) - a`` of them).
"""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId
from hypothesis import example, given
from hypothesis import strategies as st

from odm import Document, QuerySet, Reference
from odm.aggregates import Count
from odm.contrib.pytest import MonitoredDatabase
from tests.properties import server_property

pytestmark = pytest.mark.odm_drivers("pymongo")  # the compiled commands are odm's


class CojShelf(Document):
    name: str | None = None
    n: int = 0

    class Meta:
        collection = "coj_shelves"


class CojBook(Document):
    n: int = 0
    shelf: Reference[CojShelf] | None = None

    class Meta:
        collection = "coj_books"


#: A book's shelf: an index into the stored shelves, ``None`` (no shelf); any other index
#: (``-1``, past the end) stores an id no shelf has: the join finds nothing, and the book
#: must still be counted.
_Shelf = int | None


async def _store(database: Any, shelves: list[str | None], books: list[tuple[int, _Shelf]]) -> None:
    for model in (CojShelf, CojBook):
        await database[model._meta.collection].delete_many({})
    ids = [ObjectId() for _ in shelves]
    if shelves:
        await database[CojShelf._meta.collection].insert_many([
            {"_id": ids[i], "name": name, "n": i} for i, name in enumerate(shelves)
        ])
    if books:
        await database[CojBook._meta.collection].insert_many([
            {"n": n, "shelf": None if s is None else ids[s] if 0 <= s < len(ids) else ObjectId()}
            for n, s in books
        ])


async def test_count_of_a_queryset_ordered_across_a_reference(
    monitored: MonitoredDatabase,
) -> None:
    """The three shapes that raised, and a count that sends no join for the order."""
    await _store(monitored.database, ["b", "a"], [(0, 0), (1, 1), (2, None), (3, -1)])
    ordered = CojBook.objects.order_by("shelf__name")
    monitored.log.clear()
    assert await ordered.count() == 4
    assert all(
        "$lookup" not in stage
        for command in monitored.log.named("aggregate")
        for stage in command["pipeline"]
    )
    assert await ordered[0:2].count() == 2
    assert await ordered[3:9].count() == 1
    assert await ordered[5:9].count() == 0
    assert await CojBook.objects.filter(n__gte=1).order_by("-shelf__name", "n").count() == 3
    assert await CojBook.objects.filter(shelf__name="a").order_by("shelf__n").count() == 1
    assert await ordered.select_related("shelf")[1:3].count() == 2


_ORDER = st.sampled_from(["shelf__name", "-shelf__name", "shelf__n", "-shelf__n", "n", "-n"])
_BOOKS = st.lists(
    st.tuples(st.integers(0, 3), st.one_of(st.none(), st.integers(-1, 3))), max_size=8
)
_SLICE = st.one_of(
    st.none(), st.tuples(st.integers(0, 9), st.one_of(st.none(), st.integers(0, 9)))
)
_FILTER = st.sampled_from(
    [{}, {"n__gte": 2}, {"shelf__name": "a"}, {"shelf__name__in": ["a", "b"]}]
)


@server_property(max_examples=30, database=None)
@example(
    shelves=["a"], books=[(0, 0), (1, 0), (2, 0)], order=["shelf__name"], where={}, window=(0, 2)
)
@given(
    shelves=st.lists(st.sampled_from(["a", "b", "c", None]), max_size=3),
    books=_BOOKS,
    order=st.lists(_ORDER, min_size=1, max_size=2, unique=True),
    where=_FILTER,
    window=_SLICE,
)
async def test_count_is_the_number_of_rows_whatever_the_order(
    odm_database: Any,
    shelves: list[str | None],
    books: list[tuple[int, _Shelf]],
    order: list[str],
    where: dict[str, Any],
    window: tuple[int, int | None] | None,
) -> None:
    """count(), exists(), aggregate(Count()) and values().count() agree with the rows read."""
    await _store(odm_database, shelves, books)
    qs: QuerySet[CojBook] = CojBook.objects.filter(**where).order_by(*order)
    if window is not None:
        low, high = window
        qs = qs[low:high] if high is None or high >= low else qs[high:low]
    rows = len(await qs)
    assert await qs.count() == rows
    assert await qs.exists() is (rows > 0)
    assert (await qs.aggregate(c=Count()))["c"] == rows
    assert await qs.values("n").count() == rows
