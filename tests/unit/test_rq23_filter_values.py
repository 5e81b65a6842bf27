"""What a request body's value can make of a filter, through every entry that compiles one.

A hostile value (an operator document at any depth, a ``SON``, a ``RawBSONDocument``, a regex
or ``Code`` object) given to any lookup, through ``filter()``, ``exclude()``, ``Q`` under
``|`` and ``~``, a ``select_related`` join, an ``__elemmatch`` (a dict or a ``Q``), or a filter
on an annotation, is either refused with a ``QueryError`` naming the key's field, or leaves
no trace of its structure in the compiled command. The compiled command is inspected without
sending it.

Before: an error raised by a condition inside ``lines__elemmatch={"qty": ...}`` named
``qty``, which may as well be a field of the document; it names ``lines__qty`` now.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import bson
import pytest
from bson import SON, Code, Regex
from bson.raw_bson import RawBSONDocument
from hypothesis import example, given, settings
from hypothesis import strategies as st

from odm import Document, Embedded, Q, QuerySet, Reference
from odm.aggregates import Count, Max
from odm.exceptions import QueryError
from odm.query.compiler import explain_command

#: The text every hostile value carries: the compiled command holds it only if a hostile
#: value's structure (or a regex or Code object read as text) got through.
MARK = "rq23\u2603mark"


class Rq23VLine(Embedded):
    qty: int = 0
    sku: str = ""
    tags: list[str] = []
    extra: dict[str, Any] = {}


class Rq23VOrder(Embedded):
    lines: list[Rq23VLine] = []


class Rq23VAuthor(Document):
    name: str = ""
    age: int = 0

    class Meta:
        collection = "rq23v_authors"


class Rq23VDoc(Document):
    name: str = ""
    price: str = ""
    nums: list[int] = []
    codes: set[int] = set()
    grid: list[list[int]] = []
    lines: list[Rq23VLine] = []
    orders: list[Rq23VOrder] = []
    meta: dict[str, Any] = {}
    by_key: dict[str, Rq23VLine] = {}
    anything: Any = None
    author: Reference[Rq23VAuthor] | None = None
    authors: list[Reference[Rq23VAuthor]] = []

    class Meta:
        collection = "rq23v_docs"


_OPERATORS = st.sampled_from(["$ne", "$gt", "$where", "$regex", "$in", "$expr", "$elemMatch"])
_OPERATOR_DOCUMENT = st.builds(lambda op: {op: MARK}, _OPERATORS)


def _hidden(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``inner`` inside a list, beside a plain value, under a field's name or a key."""
    return st.one_of(
        st.builds(lambda v: [v], inner),
        st.builds(lambda v: ["ok", v], inner),
        st.builds(lambda v, k: {k: v}, inner, st.sampled_from(["qty", "sku", "name", "k"])),
        st.builds(lambda v, op: {"qty": 1, "sku": v, op: MARK}, inner, _OPERATORS),
    )


_OBJECTS = st.sampled_from([
    Code(MARK), Code(MARK, {}), Regex(MARK), re.compile(MARK), SON([("$gt", MARK)]),
    RawBSONDocument(bson.encode({"$ne": MARK})), [Code(MARK)], {"k": Regex(MARK)},
])
HOSTILE = st.one_of(st.recursive(_OPERATOR_DOCUMENT, _hidden, max_leaves=3), _OBJECTS)

PATHS = [
    "name", "nums", "nums__0", "codes", "grid", "grid__0", "lines", "lines__0", "lines__qty",
    "lines__tags", "lines__extra__k", "orders__lines__qty", "meta", "meta__k", "by_key__k",
    "by_key__k__qty", "anything", "author", "author__name", "author__id", "authors",
    "authors__id", "authors__name", "authors__age", "id",
]
LOOKUPS = [
    "", "__exact", "__ne", "__in", "__nin", "__gt", "__range", "__contains", "__icontains",
    "__startswith", "__regex", "__all", "__isnull", "__exists", "__size", "__elemmatch",
]


def _inner(key: str) -> str:
    """``key`` relative to a line, for an ``elemmatch`` of ``lines``."""
    return key.removeprefix("lines__")


def _annotated(key: str, value: Any) -> QuerySet[Any]:
    """The filter of ``key``'s lookup on an annotation (applied after ``$group``)."""
    lookup = key.rpartition("__")[2] if f"__{key.rpartition('__')[2]}" in LOOKUPS else ""
    name = "n" if len(key) % 2 else "m"  # a number, or a value of any type
    grouped = Rq23VDoc.objects.values("name").annotate(n=Count(), m=Max("anything"))
    return grouped.filter(**{f"{name}__{lookup}" if lookup else name: value})


#: Each entry a filter value reaches the compiler by, and the field an error must name
#: (``None``: the key's own).
ENTRIES: dict[str, tuple[Callable[[str, Any], QuerySet[Any]], Callable[[str], str] | None]] = {
    "filter": (lambda k, v: Rq23VDoc.objects.filter(**{k: v}), None),
    "exclude": (lambda k, v: Rq23VDoc.objects.exclude(**{k: v}), None),
    "or": (lambda k, v: Rq23VDoc.objects.filter(Q(**{k: v}) | Q(name="x")), None),
    "not": (lambda k, v: Rq23VDoc.objects.filter(~Q(**{k: v}) & Q(price="1")), None),
    "joined": (lambda k, v: Rq23VDoc.objects.select_related("author").filter(**{k: v}), None),
    "elemmatch": (
        lambda k, v: Rq23VDoc.objects.filter(lines__elemmatch={_inner(k): v}),
        lambda k: f"lines__{_inner(k)}",
    ),
    "elemmatch_q": (
        lambda k, v: Rq23VDoc.objects.filter(lines__elemmatch=Q(sku="a") | ~Q(**{_inner(k): v})),
        lambda k: f"lines__{_inner(k)}",
    ),
    "annotation": (_annotated, lambda k: "n" if len(k) % 2 else "m"),
}


def _traces(node: Any) -> list[Any]:
    """What of a hostile value ``node`` (a compiled command) holds: the mark, anywhere, or
    a regex, Code or raw BSON object."""
    found: list[Any] = []
    stack = [node]
    while stack:
        item = stack.pop()
        unsafe = isinstance(item, Code | Regex | re.Pattern | RawBSONDocument)
        if unsafe or (isinstance(item, str) and MARK in item):
            found.append(item)
        elif isinstance(item, dict):
            found.extend(key for key in item if MARK in str(key))
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found


def _named(error: QueryError, key: str, named: Callable[[str], str] | None) -> bool:
    """Tell whether ``error`` names the field of ``key`` (inside an elemmatch: the list's, or
    the field of its elements that the error is about, through the list)."""
    field = error.field
    if field is None:
        return False
    expected = key if named is None else named(key)
    if named is not None and field == "lines":
        return True  # the list of the elemmatch the entry puts the key in
    head = expected.removesuffix("__elemmatch")
    within = head != expected and field.startswith(f"{head}__")
    return within or expected.startswith(field) or field.startswith(expected)


@settings(max_examples=150, deadline=None, database=None)
@example(entry="elemmatch", path="lines__qty", lookup="", value={"$ne": MARK})
@example(entry="elemmatch_q", path="lines__tags", lookup="__in", value=[{"$gt": MARK}])
@example(entry="filter", path="lines", lookup="", value={"qty": 1, "sku": "a", "$where": MARK})
@example(entry="filter", path="nums", lookup="", value=Code(MARK))
@given(
    entry=st.sampled_from(sorted(ENTRIES)),
    path=st.sampled_from(PATHS),
    lookup=st.sampled_from(LOOKUPS),
    value=HOSTILE,
)
def test_a_hostile_value_is_refused_naming_its_field_or_leaves_no_trace(
    entry: str, path: str, lookup: str, value: Any
) -> None:
    build, named = ENTRIES[entry]
    key = f"{path}{lookup}"
    try:
        command = explain_command(build(key, (1, value) if lookup == "__range" else value)._query)
    except QueryError as error:
        assert _named(error, key, named), (entry, key, error.field, str(error))
        return
    assert _traces(command) == [], (entry, key, command)


@pytest.mark.parametrize(
    ("body", "field", "said"),
    [
        ({"qty": {"$ne": None}}, "lines__qty", "invalid value for 'qty'"),
        (Q(tags__in=[{"$gt": ""}]), "lines__tags", "invalid value for 'tags'"),
        ({"extra": {"$ne": None}}, "lines__extra", "holds the key '$ne'"),
        ({"nope": 1}, "lines__nope", "no field 'nope'"),
    ],
)
def test_an_error_inside_an_elemmatch_names_the_field_through_the_list(
    body: Any, field: str, said: str
) -> None:
    with pytest.raises(QueryError, match=re.escape(said)) as caught:
        Rq23VDoc.objects.filter(lines__elemmatch=body)
    assert caught.value.field == field
    assert str(caught.value).startswith("lines__elemmatch: ")


def test_an_error_in_a_nested_elemmatch_names_the_whole_path() -> None:
    with pytest.raises(QueryError) as caught:
        Rq23VDoc.objects.filter(orders__elemmatch={"lines__elemmatch": {"qty": {"$ne": 1}}})
    assert caught.value.field == "orders__lines__qty"


def _filter_of(qs: QuerySet[Any]) -> Any:
    return explain_command(qs._query)["filter"]


def test_legitimate_values_holding_dollars_or_patterns_still_compile() -> None:
    """Text holding ``$`` is data; the pattern lookups take text; ``elemmatch`` takes lookup
    names and fields."""
    objects = Rq23VDoc.objects
    assert _filter_of(objects.filter(price__startswith="$")) == {"price": {"$regex": r"^\$"}}
    assert _filter_of(objects.filter(name="$ne", nums__in=[1])) == {
        "name": "$ne", "nums": {"$in": [1]}
    }
    assert _filter_of(objects.filter(name__regex="^a$")) == {"name": {"$regex": "^a$"}}
    assert _filter_of(objects.filter(lines__elemmatch={"sku": "$x", "qty__gte": 1})) == {
        "lines": {"$elemMatch": {"sku": "$x", "qty": {"$gte": 1}}}
    }
    assert _filter_of(objects.filter(nums__elemmatch={"gte": 1, "lt": 3})) == {
        "nums": {"$elemMatch": {"$gte": 1, "$lt": 3}}
    }
    assert _filter_of(objects.filter(meta={"k": "$v"}, anything=["$a"])) == {
        "meta": {"$eq": {"k": "$v"}}, "anything": {"$eq": ["$a"]}
    }


def test_a_range_on_the_ids_of_a_list_of_references_is_one_id() -> None:
    """``authors__id__range`` was ``{"authors": {"$elemMatch": {"": {...}}}}``: a field with
    an empty name inside each id, which no id has, so nothing matched."""
    low, high = bson.ObjectId(), bson.ObjectId()
    assert _filter_of(Rq23VDoc.objects.filter(authors__id__range=(low, high))) == {
        "authors": {"$elemMatch": {"$gte": low, "$lte": high}}
    }
