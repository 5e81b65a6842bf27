"""Every lookup compiles to the expected filter; values are validated by the field's type."""

from __future__ import annotations

import datetime as dt
from typing import Any

import bson
import pytest
from test_query_models import Plain, QAddress, QCustomer, QOrder

from odm.exceptions import QueryError
from odm.query import F, Q, Query
from odm.query.compiler import CompiledFind, compile_query
from odm.query.lookups import LOOKUPS, escape_regex

OID = "5eb7cf5a86d9755df3a6c593"


def where(model: type[Any], *args: Q, **kwargs: Any) -> dict[str, Any]:
    query = Query(model)
    query.add_filter(*args, **kwargs)
    compiled = compile_query(query)
    assert isinstance(compiled, CompiledFind)
    return compiled.filter


def test_every_lookup_is_registered() -> None:
    names = {
        "exact", "iexact", "contains", "icontains", "in", "nin", "gt", "gte", "lt", "lte",
        "ne", "startswith", "istartswith", "endswith", "iendswith", "range", "isnull",
        "exists", "regex", "iregex", "size", "all", "elemmatch",
    }
    assert names <= set(LOOKUPS)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"name": "Ann"}, {"name": "Ann"}),
        ({"name__exact": "Ann"}, {"name": "Ann"}),
        ({"name__iexact": "a.n"}, {"name": {"$regex": r"\Aa\.n\z", "$options": "i"}}),
        ({"name__contains": "a+b"}, {"name": {"$regex": r"a\+b"}}),
        ({"name__icontains": "(x)"}, {"name": {"$regex": r"\(x\)", "$options": "i"}}),
        ({"name__startswith": "A*"}, {"name": {"$regex": r"^A\*"}}),
        ({"name__istartswith": "a"}, {"name": {"$regex": "^a", "$options": "i"}}),
        ({"name__endswith": "$"}, {"name": {"$regex": r"\$\z"}}),
        ({"name__iendswith": "N"}, {"name": {"$regex": r"N\z", "$options": "i"}}),
        ({"name__regex": "^A.n$"}, {"name": {"$regex": "^A.n$"}}),
        ({"name__iregex": "^a"}, {"name": {"$regex": "^a", "$options": "i"}}),
        ({"age__gt": 1}, {"age": {"$gt": 1}}),
        ({"age__gte": "2"}, {"age": {"$gte": 2}}),  # converted by pydantic
        ({"age__lt": 3}, {"age": {"$lt": 3}}),
        ({"age__lte": 4}, {"age": {"$lte": 4}}),
        ({"age__ne": 5}, {"age": {"$ne": 5}}),
        ({"age__gt": -1}, {"age": {"$gt": -1}}),  # constraints (ge=0) do not apply to filters
        ({"age__range": (1, 9)}, {"age": {"$gte": 1, "$lte": 9}}),
        ({"age__in": [1, "2"]}, {"age": {"$in": [1, 2]}}),
        ({"age__nin": (3,)}, {"age": {"$nin": [3]}}),
        ({"nick__isnull": True}, {"nick": None}),
        ({"nick__isnull": False}, {"nick": {"$ne": None}}),
        ({"nick__exists": False}, {"nick": {"$exists": False}}),
        ({"nick": None}, {"nick": None}),
        ({"active": "true"}, {"active": True}),
        ({"created__gte": dt.datetime(2024, 1, 1)}, {"created": {"$gte": dt.datetime(2024, 1, 1)}}),
    ],
)
def test_scalar_lookups(kwargs: dict[str, Any], expected: dict[str, Any]) -> None:
    assert where(QCustomer, **kwargs) == expected


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"tags": "vip"}, {"tags": "vip"}),
        ({"tags": ["a", "b"]}, {"tags": {"$eq": ["a", "b"]}}),
        ({"tags__contains": "vip"}, {"tags": "vip"}),
        ({"tags__icontains": "v.p"}, {"tags": {"$regex": r"\Av\.p\z", "$options": "i"}}),
        ({"tags__startswith": "v"}, {"tags": {"$regex": "^v"}}),
        ({"tags__in": ["a", "b"]}, {"tags": {"$in": ["a", "b"]}}),
        ({"tags__nin": ["a"]}, {"tags": {"$nin": ["a"]}}),
        ({"tags__all": ["a", "b"]}, {"tags": {"$all": ["a", "b"]}}),
        ({"tags__size": 2}, {"tags": {"$size": 2}}),
        ({"tags__ne": "x"}, {"tags": {"$ne": "x"}}),
        ({"tags__0": "first"}, {"tags.0": "first"}),
        ({"scores__gt": "5"}, {"scores": {"$gt": 5}}),
        ({"scores__contains": 3}, {"scores": 3}),
        (
            {"scores__elemmatch": {"gte": 80, "lt": 90}},
            {"scores": {"$elemMatch": {"$gte": 80, "$lt": 90}}},
        ),
    ],
)
def test_list_lookups(kwargs: dict[str, Any], expected: dict[str, Any]) -> None:
    assert where(QCustomer, **kwargs) == expected


def test_embedded_paths() -> None:
    assert where(QCustomer, address__city="Paris") == {"address.city": "Paris"}
    assert where(QCustomer, address__city__in=["P"]) == {"address.city": {"$in": ["P"]}}
    assert where(QCustomer, addresses__city="P") == {"addresses.city": "P"}
    assert where(QCustomer, address=QAddress(street="s", city="c")) == {
        "address": {"$eq": {"street": "s", "city": "c", "zip": None}}
    }
    assert where(QCustomer, addresses__elemmatch={"city": "P", "zip__startswith": "75"}) == {
        "addresses": {"$elemMatch": {"city": "P", "zip": {"$regex": "^75"}}}
    }
    assert where(QCustomer, addresses__elemmatch=Q(city="P") | Q(city="L")) == {
        "addresses": {"$elemMatch": {"$or": [{"city": "P"}, {"city": "L"}]}}
    }


def test_free_form_dicts() -> None:
    assert where(QCustomer, meta__source="web") == {"meta.source": "web"}
    assert where(QCustomer, meta__a__b__gt=3) == {"meta.a.b": {"$gt": 3}}
    assert where(QOrder, items__sku="A1") == {"items.sku": "A1"}
    assert where(QOrder, items={"sku": "A1"}) == {"items": {"$eq": {"sku": "A1"}}}
    assert where(QOrder, items__elemmatch={"sku": "A1", "qty__gte": 2}) == {
        "items": {"$elemMatch": {"sku": "A1", "qty": {"$gte": 2}}}
    }


def test_ids_and_references() -> None:
    oid = bson.ObjectId(OID)
    assert where(QCustomer, id=OID) == {"_id": oid}
    assert where(QCustomer, id__in=[OID]) == {"_id": {"$in": [oid]}}
    assert where(QOrder, customer=OID) == {"customer": oid}
    assert where(QOrder, customer__id=OID) == {"customer": oid}
    ann = QCustomer(id=oid, email="a@x.io", name="Ann")
    assert where(QOrder, customer=ann) == {"customer": oid}
    assert where(QOrder, customer__in=[ann, OID]) == {"customer": {"$in": [oid, oid]}}
    with pytest.raises(QueryError):
        where(QCustomer, id="not-an-id")
    with pytest.raises(QueryError):
        where(QOrder, customer={"$ne": None})


def test_f_in_filters() -> None:
    not_null = {"total": {"$ne": None}, "paid": {"$ne": None}}
    assert where(QOrder, total__gt=F("paid")) == {
        **not_null, "$expr": {"$gt": ["$total", "$paid"]}
    }
    assert where(QOrder, total=F("paid") * 2) == {
        **not_null,
        "$expr": {"$eq": ["$total", {"$multiply": ["$paid", {"$literal": 2}]}]}
    }
    with pytest.raises(QueryError):
        where(QOrder, total__gt=F("nope"))
    with pytest.raises(QueryError):
        where(QOrder, total__in=F("paid"))
    with pytest.raises(QueryError):
        where(QCustomer, tags=F("name"))  # through a list
    with pytest.raises(QueryError):
        where(QOrder, total=F("status") + 1)  # arithmetic on a string field


def test_q_compiles() -> None:
    assert where(QCustomer, Q(age__lt=18) | Q(name__startswith="A")) == {
        "$or": [{"age": {"$lt": 18}}, {"name": {"$regex": "^A"}}]
    }
    assert where(QCustomer, ~Q(age=1)) == {"$nor": [{"age": 1}]}
    assert where(QCustomer, Q(age=1) & Q(age=2)) == {"$and": [{"age": 1}, {"age": 2}]}
    assert where(QCustomer, Q(), age=1) == {"age": 1}
    assert where(QCustomer, Q() | Q(age=1)) == {"age": 1}
    assert where(QCustomer, ~Q()) == {}
    query = Query(QCustomer)
    query.add_exclude(age=1, name="Al")
    assert compile_query(query).explain()["find"]["filter"] == {"$nor": [{"age": 1, "name": "Al"}]}


def test_plain_pydantic_models() -> None:
    assert where(Plain, title__icontains="x", labels="a", count__gte="3") == {
        "title": {"$regex": "x", "$options": "i"},
        "labels": "a",
        "count": {"$gte": 3},
    }


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"nope": 1}, "nope"),
        ({"address__nope": 1}, "address__nope"),
        ({"age__nope": 1}, "age__nope"),
        ({"name": {"$ne": None}}, "name"),
        ({"name": ["a"]}, "name"),
        ({"name": 5}, "name"),
        ({"age": "x"}, "age"),
        ({"age__icontains": "1"}, "age"),
        ({"age__size": 1}, "age"),
        ({"tags__size": -1}, "tags"),
        ({"tags__size": True}, "tags"),
        ({"name__regex": 5}, "name"),
        ({"name__regex": "a\x00"}, "name"),
        ({"name__in": "abc"}, "name"),
        ({"name__in": {"$gt": ""}}, "name"),
        ({"age__range": (1,)}, "age"),
        ({"nick__isnull": "maybe"}, "nick"),
        ({"meta__x": {"$gt": 1}}, "meta__x"),
        ({"meta": {"a.b": 1}}, "meta"),
        ({"meta__x": bson.Regex(".*")}, "meta__x"),
        ({"address__city__gt": {"a": 1}}, "address__city"),
        ({"address__gt": {"city": "x"}}, "address"),
    ],
)
def test_refused(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(QueryError) as info:
        where(QCustomer, **kwargs)
    assert info.value.field == field
    assert field.split("__")[0] in str(info.value)


@pytest.mark.parametrize("name", ["$where", "meta__$gt", "meta__a.b", "meta__a\x00", "age____gt"])
def test_refused_names(name: str) -> None:
    with pytest.raises(QueryError):
        where(QCustomer, **{name: 1})


def test_unknown_field_names_model() -> None:
    with pytest.raises(QueryError, match="QCustomer has no field 'nme'"):
        where(QCustomer, nme="x")
    with pytest.raises(QueryError, match="QAddress has no field 'town'"):
        where(QCustomer, address__town="x")


def test_escape_regex() -> None:
    assert escape_regex("a.b*c") == r"a\.b\*c"
    assert escape_regex("\x00") == "\\x00"


def test_lookup_names_yield_to_declared_fields() -> None:
    # in a free-form dict the lookup name wins; __exact reaches a key named like a lookup
    assert where(QCustomer, meta__x__size=3) == {"meta.x": {"$size": 3}}
    assert where(QCustomer, meta__size__exact=3) == {"meta.size": 3}
