"""A list of references is a multi-valued relation: Django's rule, on the server.

The conditions inside one ``filter()`` call hold for the same target; chained ``filter()``
calls may each be met by another. ``filter(authors__name="a", authors__age=3)`` also matched
a book whose author named ``a`` is not the one aged 3. Negative conditions are about every
target (as Django's subquery for a negated multi-valued condition), and ``exclude()`` keeps
what ``filter()`` with the same conditions leaves out. A list of embedded documents keeps
MongoDB's reading: each condition any element, ``__elemmatch`` for one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from bson import ObjectId
from hypothesis import given
from hypothesis import strategies as st

from odm import Document, Embedded, Q, QuerySet, Reference
from odm.contrib.pytest import MonitoredDatabase
from tests.properties import server_property

pytestmark = pytest.mark.odm_drivers("pymongo")  # the filters are odm's, not the driver's


class QyAuthor(Document):
    name: str
    age: int = 0

    class Meta:
        collection = "qy_authors"


class QyLine(Embedded):
    sku: str
    qty: int = 1


class QyBook(Document):
    title: str
    authors: list[Reference[QyAuthor]] = []
    lines: list[QyLine] = []

    class Meta:
        collection = "qy_books"
        ordering = ["title"]


@pytest.fixture
async def books(odm_database: Any) -> None:
    """``split``: an author named a (1) and another aged 3; ``same``: one author, a and 3."""
    a1, b3, a3 = QyAuthor(name="a", age=1), QyAuthor(name="b", age=3), QyAuthor(name="a", age=3)
    await QyAuthor.objects.bulk_create([a1, b3, a3])
    await QyBook.objects.bulk_create([
        QyBook(title="none"),
        QyBook(title="same", authors=[a3], lines=[QyLine(sku="x", qty=2)]),
        QyBook(title="split", authors=[a1, b3], lines=[QyLine(sku="x"), QyLine(sku="y", qty=2)]),
    ])


async def _titles(qs: QuerySet[QyBook]) -> list[str]:
    return await qs.values_list("title", flat=True)


@pytest.mark.parametrize(
    "build",
    [
        lambda: QyBook.objects.filter(authors__name="a", authors__age=3),
        lambda: QyBook.objects.filter(Q(authors__name="a"), authors__age__gte=3),
        lambda: QyBook.objects.filter(Q(authors__name="a") & Q(authors__age__in=[3, 9])),
        lambda: QyBook.objects.filter(Q(title="-") | Q(authors__name="a", authors__age=3)),
    ],
    ids=["kwargs", "q-and-kwarg", "q-and", "and-inside-or"],
)
async def test_one_filter_call_is_met_by_one_target(books: None, build: Any) -> None:
    assert await _titles(build()) == ["same"]


async def test_chained_filter_calls_may_each_be_met_by_another_target(books: None) -> None:
    qs = QyBook.objects.filter(authors__name="a").filter(authors__age=3)
    assert await _titles(qs) == ["same", "split"]


async def test_exclude_leaves_out_what_filter_keeps(books: None) -> None:
    assert await _titles(QyBook.objects.exclude(authors__name="a", authors__age=3)) == [
        "none", "split"
    ]


async def test_a_negative_condition_is_about_every_target(books: None) -> None:
    """``__ne`` on a list tests that no element is equal, beside one target or not."""
    qs = QyBook.objects.filter(authors__name="a", authors__age__ne=1)
    assert await _titles(qs) == ["same"]
    assert await _titles(QyBook.objects.filter(authors__name="b", authors__age__ne=1)) == []


async def test_a_list_of_embedded_documents_keeps_mongodbs_reading(books: None) -> None:
    assert await _titles(QyBook.objects.filter(lines__sku="x", lines__qty=2)) == [
        "same", "split"
    ]
    one = QyBook.objects.filter(lines__elemmatch={"sku": "x", "qty": 2})
    assert await _titles(one) == ["same"]


# -- drawn: each call is met by one target, a Python oracle says which ---------------------

_CONDITIONS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "name": lambda a: a["name"] == "a",
    "age": lambda a: a["age"] == 3,
    "age__gte": lambda a: a["age"] >= 2,
    "name__in": lambda a: a["name"] in ("b", "c"),
}
_VALUES = {"name": "a", "age": 3, "age__gte": 2, "name__in": ["b", "c"]}
_AUTHOR = st.fixed_dictionaries({"name": st.sampled_from("abc"), "age": st.integers(1, 3)})
_CALL = st.lists(st.sampled_from(sorted(_CONDITIONS)), min_size=1, max_size=3, unique=True)


@server_property(max_examples=15, database=None)
@given(
    shelves=st.lists(st.lists(_AUTHOR, max_size=3), min_size=1, max_size=4),
    calls=st.lists(_CALL, min_size=1, max_size=2),
)
async def test_each_filter_call_is_met_by_one_target(
    monitored: MonitoredDatabase, shelves: list[list[dict[str, Any]]], calls: list[list[str]]
) -> None:
    database = monitored.database
    for model in (QyAuthor, QyBook):
        await database[model._meta.collection].delete_many({})
    books = []
    for index, authors in enumerate(shelves):
        stored = [{"_id": ObjectId(), **author} for author in authors]
        if stored:
            await database[QyAuthor._meta.collection].insert_many(stored)
        books.append({"title": f"b{index}", "authors": [a["_id"] for a in stored]})
        await database[QyBook._meta.collection].insert_one({**books[-1]})
    qs = QyBook.objects.all()
    for call in calls:
        qs = qs.filter(**{f"authors__{name}": _VALUES[name] for name in call})
    expected = [
        f"b{index}" for index, authors in enumerate(shelves)
        if all(any(all(_CONDITIONS[n](a) for n in call) for a in authors) for call in calls)
    ]
    assert await _titles(qs) == expected
