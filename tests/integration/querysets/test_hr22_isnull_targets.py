"""``isnull`` across a list of references reads as Django's on a multi-valued relation.

``filter(authors__nick__isnull=False)`` kept a book without authors and left out one whose
authors have a nick beside one without (it asked every author for a nick);
``filter(authors__nick__isnull=True)`` left out a book without authors, which Django's LEFT
JOIN keeps (its row's author is all null); ``authors__isnull`` tested the stored list for
null, so a book with an empty list had authors. A Python oracle of Django's reading (rows:
each author, or one null row for a book without) says what each query keeps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from bson import ObjectId
from hypothesis import given
from hypothesis import strategies as st

from odm import Document, Q, QuerySet, Reference
from tests.integration.querysets.q_trees import Leaves, kept, q_of, trees
from tests.properties import server_property

pytestmark = pytest.mark.odm_drivers("pymongo")  # the filters are odm's, not the driver's


class HrAuthor(Document):
    name: str
    nick: str | None = None

    class Meta:
        collection = "hr22_authors"


class HrBook(Document):
    title: str
    authors: list[Reference[HrAuthor]] = []

    class Meta:
        collection = "hr22_books"
        ordering = ["title"]


#: An author: its name and nick (``None``: null; ``...``: no nick key stored).
_Author = tuple[str, Any]


async def _store(database: Any, shelves: dict[str, list[_Author]]) -> None:
    for model in (HrAuthor, HrBook):
        await database[model._meta.collection].delete_many({})
    books = []
    for title, shelf in shelves.items():
        docs = [{"_id": ObjectId(), "name": name, "nick": nick} for name, nick in shelf]
        for doc in docs:
            if doc["nick"] is ...:
                del doc["nick"]
        if docs:
            await database[HrAuthor._meta.collection].insert_many(docs)
        books.append({"title": title, "authors": [doc["_id"] for doc in docs]})
    await database[HrBook._meta.collection].insert_many(books)


async def _titles(qs: QuerySet[HrBook]) -> list[str]:
    return await qs.values_list("title", flat=True)


_SHELVES: dict[str, list[_Author]] = {
    "all": [("a", "x"), ("b", "y")],
    "missing": [("a", ...)],
    "none": [],
    "some": [("a", None), ("b", "y")],
}


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: HrBook.objects.filter(authors__nick__isnull=False), ["all", "some"]),
        (lambda: HrBook.objects.filter(authors__nick__isnull=True), ["missing", "none", "some"]),
        (lambda: HrBook.objects.filter(authors__nick=None), ["missing", "none", "some"]),
        (lambda: HrBook.objects.exclude(authors__nick__isnull=True), ["all"]),
        (lambda: HrBook.objects.exclude(authors__nick__isnull=False), ["missing", "none"]),
        (
            lambda: HrBook.objects.filter(authors__name="a", authors__nick__isnull=True),
            ["missing", "some"],
        ),
        (lambda: HrBook.objects.filter(authors__name="a", authors__nick__isnull=False), ["all"]),
        (
            lambda: HrBook.objects.filter(Q(authors__nick__isnull=True) | Q(title="all")),
            ["all", "missing", "none", "some"],
        ),
        (lambda: HrBook.objects.filter(authors__isnull=True), ["none"]),
        (lambda: HrBook.objects.filter(authors__isnull=False), ["all", "missing", "some"]),
        (lambda: HrBook.objects.exclude(authors__isnull=True), ["all", "missing", "some"]),
    ],
    ids=[
        "not-null", "null", "eq-none", "exclude-null", "exclude-not-null", "one-target-null",
        "one-target-not-null", "null-in-or", "relation-null", "relation-not-null",
        "exclude-relation-null",
    ],
)
async def test_isnull_across_a_list_of_references_reads_as_djangos(
    odm_database: Any, build: Callable[[], QuerySet[HrBook]], expected: list[str]
) -> None:
    await _store(odm_database, _SHELVES)
    qs = build()
    assert await _titles(qs) == expected
    assert await qs.count() == len(expected)


async def test_a_book_with_a_null_list_has_no_author(odm_database: Any) -> None:
    await odm_database[HrBook._meta.collection].delete_many({})
    await odm_database[HrBook._meta.collection].insert_many([
        {"title": "null", "authors": None}, {"title": "unset"}
    ])
    assert await _titles(HrBook.objects.filter(authors__isnull=True)) == ["null", "unset"]
    assert await _titles(HrBook.objects.filter(authors__nick__isnull=True)) == ["null", "unset"]
    assert await _titles(HrBook.objects.filter(authors__isnull=False)) == []


# -- drawn: a Q tree of one call, against Django's rows (a null one for a book without) ------

_LEAVES: Leaves = {
    "name": ({"authors__name": "a"}, lambda a: a is not None and a[0] == "a"),
    "nick": ({"authors__nick": "x"}, lambda a: a is not None and a[1] == "x"),
    "null": ({"authors__nick__isnull": True}, lambda a: a is None or a[1] in (None, ...)),
    "none": ({"authors__nick": None}, lambda a: a is None or a[1] in (None, ...)),
    "set": ({"authors__nick__isnull": False}, lambda a: a is not None and a[1] not in (None, ...)),
}

_TREES = trees(_LEAVES)


_AUTHOR = st.tuples(st.sampled_from("ab"), st.sampled_from(["x", "y", None, ...]))


@server_property(max_examples=30, database=None)
@given(shelves=st.lists(st.lists(_AUTHOR, max_size=3), min_size=1, max_size=4), tree=_TREES)
async def test_a_q_of_one_call_with_isnull_follows_djangos_rows(
    odm_database: Any, shelves: list[list[_Author]], tree: Any
) -> None:
    await _store(odm_database, {f"b{b}": shelf for b, shelf in enumerate(shelves)})
    expected = [f"b{b}" for b, shelf in enumerate(shelves) if kept(tree, _LEAVES, shelf)]
    assert await _titles(HrBook.objects.filter(q_of(tree, _LEAVES))) == expected, tree
    kept_out = [f"b{b}" for b in range(len(shelves)) if f"b{b}" not in expected]
    assert await _titles(HrBook.objects.exclude(q_of(tree, _LEAVES))) == kept_out, tree
