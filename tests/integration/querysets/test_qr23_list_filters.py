"""``range`` on a list is met by one element; a list of references read as Django reads it.

``filter(nums__range=(1, 3))`` kept ``nums=[0, 5]``: MongoDB met ``$gte`` with 5 and ``$lte``
with 0. So did ``lines__qty__range`` with two lines, and a range at any depth of lists.
On a list of references, ``authors__id__isnull=False`` kept a book without authors (``[]``)
that ``authors__isnull=False`` leaves out, and ``authors=None`` (Django's
``authors__isnull=True``) left it out. A Python oracle says what each filter keeps;
``exclude()`` must keep exactly the others, null and missing fields included.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from bson import ObjectId
from hypothesis import example, given
from hypothesis import strategies as st

from odm import Document, Embedded, Q, QuerySet, Reference
from tests.properties import server_property

pytestmark = pytest.mark.odm_drivers("pymongo")  # the filters are odm's, not the driver's

#: A field that is not stored at all (``None`` is stored as null).
MISSING = object()


class Qr23Line(Embedded):
    qty: int | None = None
    tags: list[int] = []


class Qr23Order(Embedded):
    lines: list[Qr23Line] = []


class Qr23Doc(Document):
    k: str
    nums: list[int] | None = None
    grid: list[list[int]] | None = None
    lines: list[Qr23Line] | None = None
    orders: list[Qr23Order] | None = None

    class Meta:
        collection = "qr23_docs"


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _lines_of(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    return _listed(doc.get("lines"))


#: Each ranged path, and the values of a stored document that the range tests (any of them
#: within both ends keeps the document).
RANGED: dict[str, Callable[[Mapping[str, Any]], list[Any]]] = {
    "nums": lambda d: _listed(d.get("nums")),
    "lines__qty": lambda d: [line.get("qty") for line in _lines_of(d)],
    "lines__tags": lambda d: [t for line in _lines_of(d) for t in _listed(line.get("tags"))],
    "orders__lines__qty": lambda d: [
        line.get("qty") for order in _listed(d.get("orders"))
        for line in _listed(order.get("lines"))
    ],
    "lines__tags__0": lambda d: [
        t for line in _lines_of(d) for t in _listed(line.get("tags"))[:1]
    ],
    "grid__0": lambda d: _listed((_listed(d.get("grid")) or [None])[0]),
}

_SMALL = st.integers(0, 5)
_LINE = st.fixed_dictionaries({"qty": _SMALL | st.none(), "tags": st.lists(_SMALL, max_size=2)})
_LINES = st.none() | st.lists(_LINE, max_size=3)
#: An order with its lines null, a list, or not stored.
_ORDER = st.just({}) | st.fixed_dictionaries({"lines": _LINES})


@st.composite
def _docs(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Up to five documents, each field missing, null or a small list."""
    docs = []
    for index in range(draw(st.integers(1, 5))):
        doc = {
            "k": f"d{index}",
            "nums": draw(st.just(MISSING) | st.none() | st.lists(_SMALL, max_size=3)),
            "grid": draw(st.just(MISSING) | st.lists(st.lists(_SMALL, max_size=2), max_size=2)),
            "lines": draw(st.just(MISSING) | _LINES),
            "orders": draw(st.just(MISSING) | st.lists(_ORDER, max_size=2)),
        }
        docs.append({key: value for key, value in doc.items() if value is not MISSING})
    return docs


async def _keys(qs: QuerySet[Qr23Doc]) -> set[str]:
    return set(await qs.values_list("k", flat=True))


@server_property(max_examples=12)
@example(docs=[{"k": "d0", "nums": [0, 5], "lines": [{"qty": 0}, {"qty": 5}]}], low=1, high=3)
@given(docs=_docs(), low=_SMALL, high=_SMALL)
async def test_a_range_on_a_list_is_met_by_one_element(
    odm_database: Any, docs: list[dict[str, Any]], low: int, high: int
) -> None:
    collection = odm_database[Qr23Doc._meta.collection]
    await collection.delete_many({})
    await collection.insert_many([dict(doc) for doc in docs])
    every = {doc["k"] for doc in docs}
    for path, values in RANGED.items():
        lookup = {f"{path}__range": (low, high)}
        expected = {
            doc["k"] for doc in docs
            if any(v is not None and low <= v <= high for v in values(doc))
        }
        assert await _keys(Qr23Doc.objects.filter(**lookup)) == expected, path
        assert await _keys(Qr23Doc.objects.exclude(**lookup)) == every - expected, path


async def test_separate_bounds_keep_mongodbs_reading_of_a_list(odm_database: Any) -> None:
    """The documented rule for several lookups on one list in one call: each is met by any
    element (``nums__gte=1, nums__lte=3`` keeps ``[0, 5]``); one ``range`` by one element."""
    await odm_database[Qr23Doc._meta.collection].insert_many([
        {"k": "split", "nums": [0, 5], "lines": [{"qty": 0}, {"qty": 5}]},
        {"k": "inside", "nums": [2], "lines": [{"qty": 2}]},
    ])
    assert await _keys(Qr23Doc.objects.filter(nums__gte=1, nums__lte=3)) == {"split", "inside"}
    assert await _keys(Qr23Doc.objects.filter(nums__range=(1, 3))) == {"inside"}
    both = Qr23Doc.objects.filter(lines__qty__gte=1, lines__qty__lte=3)
    assert await _keys(both) == {"split", "inside"}
    assert await _keys(Qr23Doc.objects.filter(lines__qty__range=(1, 3))) == {"inside"}
    one = Qr23Doc.objects.filter(lines__elemmatch={"qty__gte": 1, "qty__lte": 3})
    assert await _keys(one) == {"inside"}


# -- a list of references: the stored ids, as Django reads them ----------------------------


class Qr23Author(Document):
    name: str
    age: int = 0

    class Meta:
        collection = "qr23_authors"


class Qr23Book(Document):
    title: str
    authors: list[Reference[Qr23Author]] | None = None

    class Meta:
        collection = "qr23_books"


_LIVE_A, _LIVE_B, _DANGLING = ObjectId(), ObjectId(), ObjectId()
_NAMES = {_LIVE_A: "a", _LIVE_B: "b"}  # _DANGLING: a target since deleted
_SHELVES: dict[str, Any] = {
    "missing": MISSING, "null": None, "empty": [], "dangling": [_DANGLING],
    "a": [_LIVE_A], "a+dangling": [_LIVE_A, _DANGLING], "b": [_LIVE_B],
}


def _ids(stored: Any) -> list[ObjectId]:
    return stored if isinstance(stored, list) else []


def _joined(stored: Any) -> list[str]:
    """The names of the targets the join finds (a dangling id finds none)."""
    return [_NAMES[i] for i in _ids(stored) if i in _NAMES]


#: Each lookup and, from a book's stored ``authors``, whether Django keeps the book: the
#: stored-id lookups read the ids (a dangling id is an author, as Django's ``author_id``
#: column without a join is), those on the targets' fields join (the LEFT JOIN's null row
#: for a book whose ids find no target).
_LOOKUPS: dict[str, tuple[dict[str, Any], Callable[[Any], bool]]] = {
    "id": ({"authors__id": _DANGLING}, lambda s: _DANGLING in _ids(s)),
    "id_in": ({"authors__id__in": [_LIVE_B, _DANGLING]}, lambda s: bool(
        {_LIVE_B, _DANGLING} & set(_ids(s)))),
    "id_in_none": ({"authors__id__in": [None, _LIVE_B]}, lambda s: not _ids(s) or _LIVE_B in s),
    "isnull": ({"authors__isnull": True}, lambda s: not _ids(s)),
    "not_isnull": ({"authors__isnull": False}, lambda s: bool(_ids(s))),
    "id_isnull": ({"authors__id__isnull": True}, lambda s: not _ids(s)),
    "id_not_isnull": ({"authors__id__isnull": False}, lambda s: bool(_ids(s))),
    "none": ({"authors": None}, lambda s: not _ids(s)),
    "id_none": ({"authors__id": None}, lambda s: not _ids(s)),
    "ne_none": ({"authors__ne": None}, lambda s: bool(_ids(s))),
    "name": ({"authors__name": "a"}, lambda s: "a" in _joined(s)),
    "name_isnull": ({"authors__name__isnull": True}, lambda s: not _joined(s)),
    "name_not_isnull": ({"authors__name__isnull": False}, lambda s: bool(_joined(s))),
}


async def test_lookups_on_a_list_of_references_read_as_django_and_partition(
    odm_database: Any,
) -> None:
    await odm_database[Qr23Author._meta.collection].insert_many(
        [{"_id": i, "name": name} for i, name in _NAMES.items()]
    )
    await odm_database[Qr23Book._meta.collection].insert_many([
        {"title": title} if stored is MISSING else {"title": title, "authors": stored}
        for title, stored in _SHELVES.items()
    ])
    every = set(_SHELVES)
    for name, (lookup, kept) in _LOOKUPS.items():
        expected = {title for title, stored in _SHELVES.items() if kept(stored)}
        found = set(await Qr23Book.objects.filter(**lookup).values_list("title", flat=True))
        left = set(await Qr23Book.objects.exclude(**lookup).values_list("title", flat=True))
        assert (found, left) == (expected, every - expected), name


async def test_a_negation_beside_one_target_is_read_as_documented(odm_database: Any) -> None:
    """``Q(a) & (Q(b) | ~Q(c))`` takes ``b`` from any target (docs/querysets.md: reading it
    as Django does doubles the filter per negation); written out, it is Django's reading."""
    bob20, bob40, ann20, cy30 = (ObjectId() for _ in range(4))
    await odm_database[Qr23Author._meta.collection].insert_many([
        {"_id": bob20, "name": "Bob", "age": 20}, {"_id": bob40, "name": "Bob", "age": 40},
        {"_id": ann20, "name": "Ann", "age": 20}, {"_id": cy30, "name": "Cy", "age": 30},
    ])
    await odm_database[Qr23Book._meta.collection].insert_many([
        {"title": "bob20", "authors": [bob20, cy30]},
        {"title": "bob40+ann20+cy30", "authors": [bob40, ann20, cy30]},
        {"title": "bob40", "authors": [bob40]},
    ])
    mixed = Q(authors__name="Bob") & (Q(authors__age=20) | ~Q(authors__age=30))
    written_out = Q(authors__name="Bob", authors__age=20) | (
        Q(authors__name="Bob") & ~Q(authors__age=30)
    )
    titles = Qr23Book.objects.order_by("title").values_list("title", flat=True)
    assert await titles.filter(mixed) == ["bob20", "bob40", "bob40+ann20+cy30"]
    assert await titles.filter(written_out) == ["bob20", "bob40"]
