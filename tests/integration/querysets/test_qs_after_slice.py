"""What a sliced queryset refuses, and what it still answers.

``filter()``, ``exclude()``, ``order_by()`` and the like after a slice used to apply before
it (``order_by("a")[:3].filter(a__gte=5)`` gave ``[5, 6, 7]``): they raise ``QueryError`` now,
as Django raises ``TypeError``. ``last()`` refuses an ordering through a list field (MongoDB's
descending sort of a list is not its ascending sort reversed), and ``in_bulk()`` refuses
``values()`` rows and slices instead of collapsing them into one entry.
"""

from __future__ import annotations

from typing import Any

import pytest

from odm import Document, Embedded, QueryError
from odm.aggregates import Count, Sum


class SlItem(Embedded):
    sku: str


class SlRow(Document):
    a: int
    name: str
    tags: list[str] = []
    items: list[SlItem] = []

    class Meta:
        collection = "qs_after_slice"


#: Ten rows a=0..9; three carry the tags of the list-ordering case: sorted ascending by their
#: smallest element (w < x < y), descending by their largest (x > w > y).
ROWS: list[dict[str, Any]] = [{"a": a, "name": f"n{a}"} for a in range(10)]
ROWS[1]["tags"] = ["b", "z"]  # x
ROWS[2]["tags"] = ["c", "d"]  # y
ROWS[3]["tags"] = ["a", "y"]  # w


async def _seed() -> list[SlRow]:
    docs = [SlRow(**row) for row in ROWS]
    await SlRow.objects.bulk_create(docs)
    return docs


def _a(rows: list[SlRow]) -> list[int]:
    return [r.a for r in rows]


async def test_chaining_after_a_slice_is_refused() -> None:
    """Every call that would apply before the slice raises at once, naming itself."""
    top3 = SlRow.objects.order_by("a")[:3]
    refused = {
        "filter": lambda: top3.filter(a__gte=5),
        "exclude": lambda: top3.exclude(a=0),
        "order_by": lambda: top3.order_by("-a"),
        "distinct": lambda: top3.values("a").distinct(),
        "annotate": lambda: top3.values("a").annotate(n=Count()),
        "collation": lambda: top3.collation("en", strength=2),
        "search": lambda: top3.search("word"),
        "geo_near": lambda: top3.geo_near("name", {"type": "Point", "coordinates": [0, 0]}),
    }
    for method, call in refused.items():
        with pytest.raises(QueryError, match=rf"^{method}\(\) cannot be used once a slice"):
            call()
    with pytest.raises(QueryError, match="slice"):
        SlRow.objects.all()[2:].order_by()  # clearing the ordering reorders the slice too
    with pytest.raises(QueryError, match="slice"):
        SlRow.objects.order_by("a")[1:][:2].filter(name="n1")  # composed slices as well
    # Refused before anything is sent: no database is needed to see it.
    with pytest.raises(QueryError, match=r"^get\(\) cannot be used once a slice"):
        await top3.get(a=1)
    with pytest.raises(QueryError, match=r"^in_bulk\(\).*sliced"):
        await top3.in_bulk([1])
    with pytest.raises(QueryError, match=r"^in_bulk\(\).*sliced"):
        await top3.in_bulk()
    # first() on an unordered slice would have to order it by id, changing what it holds.
    with pytest.raises(QueryError, match=r"^first\(\) cannot be used once a slice"):
        await SlRow.objects.all()[3:].first()
    # What a slice does not change stays allowed, and leaves the slice as it was.
    for same in (top3.filter(), top3.exclude(), top3.all(), top3.only("a"), top3.defer("tags")):
        assert same.query.low_mark == 0 and same.query.high_mark == 3
        assert same.query.ordering == ("a",)
    assert top3.values("a").query.high_mark == 3
    # Before the slice, all of them compose as ever.
    chained = SlRow.objects.filter(a__gte=5).exclude(a=6).order_by("-a").distinct()[:2]
    assert chained.query.high_mark == 2


async def test_sliced_queryset_still_answers(odm_database: Any) -> None:
    """first/get/count/exists/values/iteration append their own slice or ordering: unchanged."""
    await _seed()
    top3 = SlRow.objects.order_by("a")[:3]
    assert _a(await top3) == [0, 1, 2]
    assert _a(await top3.filter()) == [0, 1, 2]
    assert await top3.count() == 3
    assert await top3.exists() is True
    assert (await top3.first()).a == 0  # type: ignore[union-attr]
    assert (await SlRow.objects.order_by("a")[1:].first()).a == 1  # type: ignore[union-attr]
    assert (await SlRow.objects.order_by("-a")[4:6].first()).a == 5  # type: ignore[union-attr]
    assert (await SlRow.objects.order_by("a")[2:3].get()).a == 2
    with pytest.raises(SlRow.MultipleObjectsReturned):
        await top3.get()
    with pytest.raises(SlRow.DoesNotExist):
        await SlRow.objects.order_by("a")[10:].get()
    assert await top3.values_list("a", flat=True) == [0, 1, 2]
    assert await top3.values("a") == [{"a": 0}, {"a": 1}, {"a": 2}]
    assert [r.a async for r in SlRow.objects.order_by("a")[7:]] == [7, 8, 9]
    assert _a(await top3.only("a")) == [0, 1, 2]
    assert _a(await top3[1:]) == [1, 2]
    assert (await top3[1]).a == 1
    assert _a(await top3.to_list(2)) == [0, 1]
    assert await top3.aggregate(total=Sum("a")) == {"total": 3}
    assert await SlRow.objects.order_by("a")[5:8].count() == 3
    assert await SlRow.objects.order_by("a")[10:].exists() is False
    with pytest.raises(QueryError, match="sliced"):
        await top3.last()  # refused before, still refused
    # filter before the slice: the documented way.
    assert _a(await SlRow.objects.filter(a__gte=5).order_by("a")[:3]) == [5, 6, 7]
    assert _a(await SlRow.objects.exclude(a=0).order_by("a")[:3]) == [1, 2, 3]


async def test_last_refuses_an_ordering_through_a_list(odm_database: Any) -> None:
    docs = await _seed()
    x, y, w = docs[1], docs[2], docs[3]
    tagged = SlRow.objects.filter(a__in=[1, 2, 3])
    assert [d.id for d in await tagged.order_by("tags")] == [w.id, x.id, y.id]
    assert (await tagged.order_by("tags").first()).id == w.id  # type: ignore[union-attr]
    for ordering in (("tags",), ("-tags",), ("name", "tags"), ("items__sku",)):
        with pytest.raises(QueryError, match=r"^last\(\).*list field") as caught:
            await tagged.order_by(*ordering).last()
        assert caught.value.field == ordering[-1].lstrip("-")
    # An ordering on plain fields reverses as before.
    assert (await SlRow.objects.order_by("a").last()).a == 9  # type: ignore[union-attr]
    assert (await SlRow.objects.order_by("-a").last()).a == 0  # type: ignore[union-attr]
    assert (await tagged.order_by("name").last()).id == w.id  # type: ignore[union-attr]
    assert (await SlRow.objects.all().last()).id == docs[-1].id  # type: ignore[union-attr]


async def test_in_bulk_refuses_rows_and_keeps_documents(odm_database: Any) -> None:
    docs = await _seed()
    ids = [docs[0].id, docs[4].id]
    for rows in (
        SlRow.objects.values("a"),
        SlRow.objects.values_list("a"),
        SlRow.objects.values_list("a", flat=True),
        SlRow.objects.values("a").distinct(),
        SlRow.objects.values("name").annotate(n=Count()),
    ):
        with pytest.raises(QueryError, match=r"^in_bulk\(\).*values\(\)"):
            await rows.in_bulk(ids)
        with pytest.raises(QueryError, match=r"^in_bulk\(\).*values\(\)"):
            await rows.in_bulk()
    found = await SlRow.objects.in_bulk(ids)
    assert {k: v.a for k, v in found.items()} == {docs[0].id: 0, docs[4].id: 4}
    assert set(await SlRow.objects.filter(a__gte=4).in_bulk(ids)) == {docs[4].id}
    assert len(await SlRow.objects.only("a").in_bulk()) == 10
