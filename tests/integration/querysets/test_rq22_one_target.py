"""Each condition of one ``filter()`` call on a list of references holds for one target.

``filter(authors__age__range=(1, 3))`` kept a book whose authors are aged 0 and 5: MongoDB
met ``$gte`` with one author and ``$lte`` with another, where ``filter(authors__age__gte=1,
authors__age__lte=3)`` asked one author. ``authors__tags__all=["x", "y"]`` likewise took ``x``
of one author and ``y`` of another. And an ``|`` nested in the ``&`` of one call
(``Q(authors__name="a") & (Q(authors__age=5, authors__tags="y") | Q(authors__age=9))``) was
met by several authors. A Python oracle of Django's rule (one target for the positive
conditions of a call, every target for a negated one) says what each query keeps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from bson import ObjectId
from hypothesis import example, given
from hypothesis import strategies as st

from odm import Document, Q, QuerySet, Reference
from odm.contrib.pytest import MonitoredDatabase
from tests.integration.querysets.q_trees import Leaves, kept, q_of, trees
from tests.properties import server_property

pytestmark = pytest.mark.odm_drivers("pymongo")  # the filters are odm's, not the driver's


class Rq22Author(Document):
    name: str
    age: int = 0
    tags: list[str] = []

    class Meta:
        collection = "rq22_authors"


class Rq22Book(Document):
    title: str
    authors: list[Reference[Rq22Author]] = []

    class Meta:
        collection = "rq22_books"
        ordering = ["title"]


#: ``split``: authors ``a`` (0, [x]) and ``b`` (5, [y]); ``one``: ``a`` (2, [x, y]).
_AUTHORS = {"a0": ("a", 0, ["x"]), "b5": ("b", 5, ["y"]), "a2": ("a", 2, ["x", "y"])}
_BOOKS = {"none": [], "one": ["a2"], "split": ["a0", "b5"]}


async def _store(
    database: Any, authors: dict[str, tuple[str, int, list[str]]], books: dict[str, list[str]]
) -> None:
    for model in (Rq22Author, Rq22Book):
        await database[model._meta.collection].delete_many({})
    ids = {key: ObjectId() for key in authors}
    if authors:
        await database[Rq22Author._meta.collection].insert_many([
            {"_id": ids[key], "name": name, "age": age, "tags": tags}
            for key, (name, age, tags) in authors.items()
        ])
    await database[Rq22Book._meta.collection].insert_many([
        {"title": title, "authors": [ids[key] for key in keys]} for title, keys in books.items()
    ])


async def _titles(qs: QuerySet[Rq22Book]) -> list[str]:
    return await qs.values_list("title", flat=True)


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: Rq22Book.objects.filter(authors__age__range=(1, 3)), ["one"]),
        (lambda: Rq22Book.objects.filter(Q(authors__age__range=(1, 3)) | Q(title="-")), ["one"]),
        (lambda: Rq22Book.objects.exclude(authors__age__range=(1, 3)), ["none", "split"]),
        (lambda: Rq22Book.objects.filter(authors__tags__all=["x", "y"]), ["one"]),
        (
            lambda: Rq22Book.objects.filter(
                Q(authors__name="a") & (Q(authors__age=5, authors__tags="y") | Q(authors__age=9))
            ),
            [],
        ),
    ],
    ids=["range", "range-in-or", "exclude-range", "all", "or-inside-and"],
)
async def test_one_lookup_of_several_conditions_is_met_by_one_target(
    monitored: MonitoredDatabase, build: Callable[[], QuerySet[Rq22Book]], expected: list[str]
) -> None:
    await _store(monitored.database, _AUTHORS, _BOOKS)
    assert await _titles(build()) == expected


async def test_every_method_reads_the_filter_alike(monitored: MonitoredDatabase) -> None:
    """count(), exists(), values(), update() and delete() keep what the filter keeps."""
    await _store(monitored.database, _AUTHORS, _BOOKS)

    def chosen() -> QuerySet[Rq22Book]:
        return Rq22Book.objects.filter(authors__age__range=(1, 3))

    assert await chosen().count() == 1
    assert await Rq22Book.objects.filter(authors__age__range=(3, 4)).exists() is False
    assert await chosen().values("title") == [{"title": "one"}]
    assert await chosen().update(title="one!") == 1
    assert await chosen().delete() == 1
    assert await _titles(Rq22Book.objects.all()) == ["none", "split"]


# -- drawn: a Q tree of one call, against Django's rule ---------------------------------------

_Author = tuple[str, int, list[str]]
_LEAVES: Leaves = {
    "name": ({"authors__name": "a"}, lambda a: a is not None and a[0] == "a"),
    "age": ({"authors__age": 2}, lambda a: a is not None and a[1] == 2),
    "range": ({"authors__age__range": (1, 3)}, lambda a: a is not None and 1 <= a[1] <= 3),
    "all": (
        {"authors__tags__all": ["x", "y"]}, lambda a: a is not None and {"x", "y"} <= set(a[2])
    ),
    "tag": ({"authors__tags": "x"}, lambda a: a is not None and "x" in a[2]),
}

_TREES = trees(_LEAVES)


_AUTHOR = st.tuples(
    st.sampled_from("ab"), st.integers(0, 5), st.lists(st.sampled_from("xy"), unique=True)
)


@server_property(max_examples=25, database=None)
@example(shelves=[[("a", 0, ["x"]), ("b", 5, ["y"])]], tree=("not", "range"))
@given(shelves=st.lists(st.lists(_AUTHOR, max_size=3), min_size=1, max_size=4), tree=_TREES)
async def test_a_q_of_one_call_follows_djangos_rule(
    odm_database: Any, shelves: list[list[_Author]], tree: Any
) -> None:
    authors = {
        f"{b}.{i}": author for b, shelf in enumerate(shelves) for i, author in enumerate(shelf)
    }
    books = {f"b{b}": [f"{b}.{i}" for i in range(len(shelf))] for b, shelf in enumerate(shelves)}
    await _store(odm_database, authors, books)
    expected = [f"b{b}" for b, shelf in enumerate(shelves) if kept(tree, _LEAVES, shelf)]
    assert await _titles(Rq22Book.objects.filter(q_of(tree, _LEAVES))) == expected, tree
