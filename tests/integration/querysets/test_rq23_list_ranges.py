"""``range`` on the lists the earlier tests left out, against a Python oracle.

``authors__id__range=(a, b)`` compiled to ``{"authors": {"$elemMatch": {"": {...}}}}``: a field
with an empty name inside each stored id, which no id has, so the filter kept no book (and
``exclude()`` every one). The ids of a list of references are now met whole, one id within
both ends, as ``authors__id__in`` reads the stored ids (a dangling id counts). The other
lists: a ``set``, a list of datetimes, a position (``nums__0``, a single value) and a range
under ``~Q`` and ``|``; ``exclude()`` keeps exactly what ``filter()`` leaves out.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId

from odm import Document, Q, Reference

pytestmark = pytest.mark.odm_drivers("pymongo")  # the filters are odm's, not the driver's


class Rq23RAuthor(Document):
    name: str = ""

    class Meta:
        collection = "rq23r_authors"


class Rq23RDoc(Document):
    k: str
    nums: list[int] | None = None
    codes: set[int] | None = None
    seen: list[datetime] | None = None
    authors: list[Reference[Rq23RAuthor]] | None = None

    class Meta:
        collection = "rq23r_docs"


_IDS = sorted(ObjectId() for _ in range(4))
_LIVE = _IDS[:3]  # _IDS[3]: an author since deleted, its id left behind
_DAY = [datetime(2024, 1, day, tzinfo=UTC) for day in range(1, 6)]

#: Each stored document (a field missing is not stored).
_STORED: list[dict[str, Any]] = [
    {"k": "split", "nums": [0, 4], "codes": [0, 4], "seen": [_DAY[0], _DAY[4]],
     "authors": [_IDS[0], _IDS[3]]},
    {"k": "inside", "nums": [2, 9], "codes": [2], "seen": [_DAY[2]], "authors": [_IDS[1]]},
    {"k": "dangling", "nums": [9, 2], "authors": [_IDS[3]]},
    {"k": "empty", "nums": [], "codes": [], "seen": [], "authors": []},
    {"k": "null", "nums": None, "codes": None, "seen": None, "authors": None},
    {"k": "missing"},
]


def _in(low: Any, high: Any) -> Callable[[Any], bool]:
    return lambda value: value is not None and low <= value <= high


def _list(doc: dict[str, Any], name: str) -> list[Any]:
    return doc.get(name) or []


#: Each filter, and from a stored document whether it keeps it.
_CASES: dict[str, tuple[Q, Callable[[dict[str, Any]], bool]]] = {
    "ids": (
        Q(authors__id__range=(_IDS[1], _IDS[2])),
        lambda d: any(_in(_IDS[1], _IDS[2])(i) for i in _list(d, "authors")),
    ),
    "dangling id": (
        Q(authors__id__range=(_IDS[3], _IDS[3])),
        lambda d: _IDS[3] in _list(d, "authors"),
    ),
    "set": (Q(codes__range=(1, 3)), lambda d: any(_in(1, 3)(c) for c in _list(d, "codes"))),
    "datetimes": (
        Q(seen__range=(_DAY[1], _DAY[3])),
        lambda d: any(_in(_DAY[1], _DAY[3])(s) for s in _list(d, "seen")),
    ),
    "position": (Q(nums__0__range=(1, 3)), lambda d: _in(1, 3)((_list(d, "nums") or [None])[0])),
    "not | ids": (
        ~Q(nums__range=(1, 3)) | Q(authors__id__range=(_IDS[0], _IDS[0])),
        lambda d: not any(_in(1, 3)(n) for n in _list(d, "nums")) or _IDS[0] in _list(
            d, "authors"),
    ),
}


async def test_ranges_on_lists_keep_what_one_element_meets_and_exclude_the_rest(
    odm_database: Any,
) -> None:
    await odm_database[Rq23RAuthor._meta.collection].insert_many(
        [{"_id": i, "name": f"a{n}"} for n, i in enumerate(_LIVE)]
    )
    await odm_database[Rq23RDoc._meta.collection].insert_many([dict(d) for d in _STORED])
    every = {doc["k"] for doc in _STORED}
    for name, (q, keeps) in _CASES.items():
        expected = {doc["k"] for doc in _STORED if keeps(doc)}
        found = set(await Rq23RDoc.objects.filter(q).values_list("k", flat=True))
        left = set(await Rq23RDoc.objects.exclude(q).values_list("k", flat=True))
        assert (found, left) == (expected, every - expected), name
