"""A request body's operator through a list lookup is refused, naming the field.

``filter(lines={"$ne": None})`` on a list of embedded lines was ``lines == Line()`` (pydantic
dropped the key its model does not declare), ``lines__in=[{"$where": "1"}]`` likewise, and
``nums=Code("1")`` was ``nums == 1`` (a ``Code`` is a ``str``). Each hostile value, through
each list lookup, raises QueryError at ``filter()`` time (nothing is sent), and the error
names the field.
"""

from __future__ import annotations

import re
from typing import Any

import bson
import pytest
from bson import SON, Code, Regex
from bson.raw_bson import RawBSONDocument

from odm import Document, Embedded, Reference
from odm.exceptions import QueryError


class Qr23HLine(Embedded):
    qty: int = 0
    tags: list[str] = []


class Qr23HAuthor(Document):
    name: str

    class Meta:
        collection = "qr23h_authors"


class Qr23HDoc(Document):
    nums: list[int] = []
    words: list[str] = []
    grid: list[list[int]] = []
    lines: list[Qr23HLine] = []
    authors: list[Reference[Qr23HAuthor]] = []

    class Meta:
        collection = "qr23h_docs"


HOSTILE: dict[str, Any] = {
    "ne": {"$ne": None},
    "where": {"$where": "sleep(100)"},
    "son": SON([("$gt", "")]),
    "raw": RawBSONDocument(bson.encode({"$ne": None})),
    "beside": {"qty": 1, "$where": "1"},
    "regex": Regex(".*"),
    "pattern": re.compile(".*"),
    "code": Code("1"),
    "nested": [[{"$ne": None}]],
    "listed": [{"$gt": 0}],
}

#: Each list path and the lookups a body may name on it.
PATHS = {
    "nums": ["", "__contains", "__all", "__in", "__nin", "__range", "__isnull", "__exact", "__0"],
    "words": ["", "__contains", "__all", "__in", "__icontains", "__0", "__0__in"],
    "grid": ["", "__contains", "__all", "__in", "__0", "__0__in"],
    "lines": ["", "__contains", "__all", "__in", "__nin", "__ne", "__exact", "__0"],
    "lines__qty": ["", "__range", "__in"],
    "authors": ["", "__in", "__isnull", "__id", "__id__in"],
}
CASES = [
    (f"{path}{lookup}", name) for path, lookups in PATHS.items() for lookup in lookups
    for name in HOSTILE
] + [(f"{path}__size", name) for path in ("nums", "lines") for name in HOSTILE]


def _refusal(key: str, value: Any) -> str | None:
    """What is wrong with ``filter(**{key: value})``: ``None`` when it is refused at
    ``filter()`` time with an error naming the field."""
    try:
        qs = Qr23HDoc.objects.filter(**{key: value})
    except QueryError as error:
        if error.field is None or not key.startswith(error.field):
            return f"{key}: the error names {error.field!r}: {error}"
        return None
    return f"{key}: accepted as {qs.explain_query()}"


def test_each_hostile_value_is_refused_naming_the_field() -> None:
    """One test of every case (not one each: a case takes microseconds, a test far more)."""
    wrong = [_refusal(key, HOSTILE[name]) for key, name in CASES]
    assert [problem for problem in wrong if problem is not None] == []


@pytest.mark.parametrize("name", ["ne", "where", "son", "raw"])
def test_an_operator_in_an_elemmatch_is_refused_naming_the_list(name: str) -> None:
    with pytest.raises(QueryError, match="lines__elemmatch") as info:
        Qr23HDoc.objects.filter(lines__elemmatch=HOSTILE[name])
    assert info.value.field == "lines"
