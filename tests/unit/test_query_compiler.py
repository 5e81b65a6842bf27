"""Query state and its compiled forms: find arguments, pipelines, counts, updates."""

from __future__ import annotations

from typing import Any

import bson
import pytest
from test_query_models import QCustomer, QOrder, QShipment

from odm.aggregates import Avg, Count, Max, Min, StdDev, Sum
from odm.document import Document
from odm.exceptions import QueryError
from odm.query import F, Q, Query
from odm.query.compiler import (
    CompiledFind,
    CompiledPipeline,
    compile_aggregate,
    compile_count,
    compile_exists,
    compile_query,
    compile_update,
    compile_write,
    explain_query,
)

OID = "5eb7cf5a86d9755df3a6c593"


class QAnimal(Document):
    name: str = ""

    class Meta:
        collection = "qt_animals"
        polymorphic = True


class QDog(QAnimal):
    barks: bool = True


def pipeline(query: Query) -> list[dict[str, Any]]:
    compiled = compile_query(query)
    assert isinstance(compiled, CompiledPipeline)
    return compiled.pipeline


def test_api_example_find() -> None:
    query = Query(QCustomer)
    query.add_filter(age__gte=18, address__city__in=["Paris", "Lyon"])
    query.add_exclude(tags__contains="spam")
    query.set_ordering("-created")
    query.apply_slice(slice(None, 20))
    assert explain_query(query) == {
        "find": {
            "filter": {
                "age": {"$gte": 18},
                "address.city": {"$in": ["Paris", "Lyon"]},
                "$nor": [{"tags": "spam"}],
            },
            "sort": {"created": -1},
            "limit": 20,
        }
    }
    compiled = compile_query(query)
    assert isinstance(compiled, CompiledFind)
    assert compiled.kwargs()["sort"] == [("created", -1)]


def test_default_ordering_and_clearing() -> None:
    query = Query(QCustomer)
    assert explain_query(query) == {"find": {"filter": {}, "sort": {"created": -1}}}
    query.set_ordering()
    assert explain_query(query) == {"find": {"filter": {}}}
    query.set_ordering("name", "-id")
    assert explain_query(query)["find"]["sort"] == {"name": 1, "_id": -1}
    with pytest.raises(QueryError):
        query.set_ordering("nope")
    with pytest.raises(QueryError):
        query.set_ordering("?")


def test_reverse_ordering() -> None:
    query = Query(QCustomer)
    query.reverse_ordering()
    assert query.ordering == ("created",)
    unordered = Query(QOrder)
    unordered.reverse_ordering()
    assert unordered.ordering == ("-id",)


def test_slicing() -> None:
    query = Query(QOrder)
    query.apply_slice(slice(10, 20))
    query.apply_slice(slice(2, 5))
    assert (query.low_mark, query.high_mark, query.limit) == (12, 15, 3)
    assert explain_query(query) == {"find": {"filter": {}, "skip": 12, "limit": 3}}
    query.apply_slice(slice(5, None))
    assert (query.low_mark, query.high_mark) == (15, 15)
    one = Query(QOrder)
    one.apply_slice(3)
    assert (one.low_mark, one.high_mark) == (3, 4)
    for bad in (slice(-1, None), slice(None, -2), -1, slice(0, 10, 2), "a"):
        with pytest.raises(QueryError, match=r"negative|step|int"):
            Query(QOrder).apply_slice(bad)  # type: ignore[arg-type]


def test_clone_is_independent() -> None:
    base = Query(QCustomer)
    base.add_filter(age__gte=18)
    base.set_values(("address__city",), "dicts")
    base.add_annotations({"n": Count()})
    before = explain_query(base)
    other = base.clone()
    other.add_filter(name="x")
    other.add_annotations({"m": Max("age")})
    other.apply_slice(slice(0, 5))
    other.set_ordering("-n")
    assert explain_query(base) == before
    assert "m" not in base.annotations
    assert base.where != other.where


def test_polymorphic_class_filter() -> None:
    assert explain_query(Query(QDog))["find"]["filter"] == {"_cls": "QDog"}
    query = Query(QDog)
    query.add_filter(name="Rex")
    assert explain_query(query)["find"]["filter"] == {"_cls": "QDog", "name": "Rex"}


def test_only_and_defer() -> None:
    query = Query(QCustomer)
    query.add_only("name", "address", "address__city")
    assert explain_query(query)["find"]["projection"] == {"address": 1, "name": 1}
    query.add_defer("name")
    assert explain_query(query)["find"]["projection"] == {"address": 1}
    deferred = Query(QCustomer)
    deferred.add_defer("tags", "address__zip")
    assert explain_query(deferred)["find"]["projection"] == {"tags": 0, "address.zip": 0}
    with pytest.raises(QueryError):
        deferred.add_defer("id")
    locked = Query(QOrder)
    locked.add_only("total")
    assert explain_query(locked)["find"]["projection"] == {"total": 1, "version": 1}


def test_select_related() -> None:
    query = Query(QOrder)
    query.add_related("customer")
    query.apply_slice(slice(0, 20))
    compiled = compile_query(query)
    assert isinstance(compiled, CompiledPipeline)
    # sort/skip/limit run before the join: 20 lookups, not one per document
    assert compiled.pipeline == [
        {"$limit": 20},
        {
            "$lookup": {
                "from": "qt_customers",
                "localField": "customer",
                "foreignField": "_id",
                "as": "__odm_rel_customer",
            }
        },
        {"$unwind": {"path": "$__odm_rel_customer", "preserveNullAndEmptyArrays": True}},
    ]
    assert [(r.path, r.key, r.target) for r in compiled.related] == [
        ("customer", "__odm_rel_customer", QCustomer)
    ]
    with pytest.raises(QueryError):
        Query(QOrder).add_related("total")
    with pytest.raises(QueryError, match="prefetch_related"):
        Query(QOrder).add_related("watchers")


def test_select_related_of_the_stored_id_names_the_reference() -> None:
    """``customer__id`` resolves to the id the reference stores: a join under that name would
    attach nothing, so it is refused, pointing at ``select_related("customer")``."""
    with pytest.raises(QueryError, match=r"write select_related\('customer'\)") as raised:
        Query(QOrder).add_related("customer__id")
    assert raised.value.field == "customer__id"


def test_filter_across_reference() -> None:
    query = Query(QOrder)
    query.add_filter(status="paid", customer__age__gte=18)
    assert pipeline(query) == [
        {"$match": {"status": "paid"}},
        {
            "$lookup": {
                "from": "qt_customers",
                "localField": "customer",
                "foreignField": "_id",
                "as": "__odm_rel_customer",
            }
        },
        {"$unwind": {"path": "$__odm_rel_customer", "preserveNullAndEmptyArrays": True}},
        {"$match": {"__odm_rel_customer.age": {"$gte": 18}}},
        {"$unset": ["__odm_rel_customer"]},
    ]
    with_related = query.clone()
    with_related.add_related("customer")
    assert {"$unset": ["__odm_rel_customer"]} not in pipeline(with_related)


def test_two_hop_reference_and_list_of_references() -> None:
    query = Query(QShipment)
    query.add_filter(order__customer__name="Ann")
    stages = pipeline(query)
    lookups = [s["$lookup"] for s in stages if "$lookup" in s]
    assert [(lk["localField"], lk["as"]) for lk in lookups] == [
        ("order", "__odm_rel_order"),
        ("__odm_rel_order.customer", "__odm_rel_order__customer"),
    ]
    assert {"$match": {"__odm_rel_order__customer.name": "Ann"}} in stages
    many = Query(QOrder)
    many.add_filter(watchers__name="Bo")
    stages = pipeline(many)
    assert not any("$unwind" in s for s in stages)  # a list join matches any element
    assert {"$match": {"__odm_rel_watchers.name": "Bo"}} in stages


def test_values_and_values_list() -> None:
    query = Query(QCustomer)
    query.set_values(("name", "address__city", "id"), "dicts")
    assert pipeline(query) == [
        {"$sort": {"created": -1}},
        {
            "$project": {
                "_id": 0,
                "name": {"$ifNull": ["$name", None]},
                "address__city": {"$ifNull": ["$address.city", None]},
                "id": {"$ifNull": ["$_id", None]},
            }
        },
    ]
    flat = Query(QOrder)
    flat.set_values(("customer__name",), "flat")
    compiled = compile_query(flat)
    assert isinstance(compiled, CompiledPipeline)
    assert compiled.rows == "flat" and compiled.names == ("customer__name",)
    assert compiled.pipeline[-1] == {
        "$project": {"_id": 0, "customer__name": {"$ifNull": ["$__odm_rel_customer.name", None]}}
    }
    with pytest.raises(QueryError):
        Query(QCustomer).set_values(("name", "age"), "flat")


def test_distinct_values() -> None:
    query = Query(QCustomer)
    query.set_values(("address__city",), "flat")
    query.distinct = True
    query.set_ordering("address__city")
    assert pipeline(query) == [
        {"$group": {"_id": {"address__city": "$address.city"}}},
        {"$project": {"_id": 0, "address__city": "$_id.address__city"}},
        {"$sort": {"address__city": 1}},
    ]


def test_values_annotate_group() -> None:
    query = Query(QCustomer)
    query.add_filter(age__gte=18)
    query.set_values(("address__city",), "dicts")
    query.add_annotations({"n": Count(), "oldest": Max("age"), "avg": Avg("score")})
    query.add_filter(n__gt=5)
    query.set_ordering("-n")
    query.apply_slice(slice(0, 10))
    assert explain_query(query) == {
        "aggregate": [
            {"$match": {"age": {"$gte": 18}}},
            {
                "$group": {
                    "_id": {"address__city": "$address.city"},
                    "n": {"$sum": 1},
                    "oldest": {"$max": "$age"},
                    "avg": {"$avg": "$score"},
                }
            },
            {
                "$project": {
                    "_id": 0,
                    "address__city": "$_id.address__city",
                    "n": "$n",
                    "oldest": "$oldest",
                    "avg": "$avg",
                }
            },
            {"$match": {"n": {"$gt": 5}}},
            {"$sort": {"n": -1}},
            {"$limit": 10},
        ]
    }
    assert query.output_names() == ("address__city", "n", "oldest", "avg")
    with pytest.raises(QueryError, match="grouped rows"):
        bad = query.clone()
        bad.set_ordering("age")
        compile_query(bad)
    with pytest.raises(QueryError, match="mixes"):
        query.clone().add_filter(Q(n__gt=1) | Q(age=3))
    with pytest.raises(QueryError):
        Query(QCustomer).add_annotations({"n": Count()})  # no values() first
    with pytest.raises(QueryError):
        query.clone().add_annotations({"x": Sum("name")})  # not a number


def widened(term: Any) -> dict[str, Any]:
    """A ``Sum`` term: an int32 added as an int64, so that only a sum of nothing is an int32."""
    int32 = {"$eq": [{"$type": "$$v"}, "int"]}
    return {"$let": {"vars": {"v": term}, "in": {"$cond": [int32, {"$toLong": "$$v"}, "$$v"]}}}


def sum_or_none(total: str) -> dict[str, Any]:
    """A ``Sum``'s finishing step: ``None`` for a sum of no number (an int32), an int64 that
    fits back into an int32."""
    kind = {"$type": total}
    fits = {"$and": [{"$gte": [total, -(2**31)]}, {"$lt": [total, 2**31]}]}
    return {
        "$switch": {
            "branches": [
                {"case": {"$eq": [kind, "int"]}, "then": None},
                {"case": {"$and": [{"$eq": [kind, "long"]}, fits]}, "then": {"$toInt": total}},
            ],
            "default": total,
        }
    }


def test_aggregate() -> None:
    query = Query(QOrder)
    query.add_filter(status="paid")
    compiled = compile_aggregate(
        query,
        {
            "n": Count(),
            "with_items": Count("items"),
            "people": Count("customer", distinct=True),
            "total": Sum("total"),
            "double": Sum(F("total") * 2),
            "low": Min("total"),
            "sd": StdDev("total", sample=True),
        },
    )
    assert compiled.pipeline == [
        {"$match": {"status": "paid"}},
        {
            "$group": {
                "_id": None,
                "n": {"$sum": 1},
                "with_items": {
                    "$sum": {"$cond": [{"$eq": [{"$ifNull": ["$items", None]}, None]}, 0, 1]}
                },
                "people": {"$addToSet": "$customer"},
                "total": {"$sum": widened("$total")},
                "double": {"$sum": widened({"$multiply": ["$total", {"$literal": 2}]})},
                "low": {"$min": "$total"},
                "sd": {"$stdDevSamp": "$total"},
            }
        },
        {
            "$project": {
                "_id": 0,
                "n": "$n",
                "with_items": "$with_items",
                "people": {"$size": {"$setDifference": ["$people", [None]]}},
                "total": sum_or_none("$total"),
                "double": sum_or_none("$double"),
                "low": "$low",
                "sd": "$sd",
            }
        },
    ]
    assert compiled.result([]) == {
        "n": 0, "with_items": 0, "people": 0, "total": None, "double": None, "low": None,
        "sd": None,
    }
    assert compiled.result([{"n": 2, "total": 5.0}])["n"] == 2
    across = compile_aggregate(Query(QOrder), {"avg_age": Avg("customer__age")})
    assert any("$lookup" in s for s in across.pipeline)
    for bad in ({}, {"n": "count"}, {"$n": Count()}, {"x": Avg("status")}, {"x": Sum("nope")}):
        with pytest.raises(QueryError):
            compile_aggregate(Query(QOrder), bad)


def test_count_exists_write() -> None:
    query = Query(QCustomer)
    query.add_filter(age__gte=18)
    query.apply_slice(slice(5, 15))
    count = compile_count(query)
    assert count.filter == {"age": {"$gte": 18}} and (count.skip, count.limit) == (5, 10)
    assert count.kwargs() == {"filter": {"age": {"$gte": 18}}, "skip": 5, "limit": 10}
    joined = Query(QOrder)
    joined.add_filter(customer__age__gte=18)
    counted = compile_count(joined)
    assert counted.filter is None and counted.pipeline is not None
    assert counted.pipeline[-1] == {"$count": "n"}
    assert explain_query(Query(QCustomer)) != compile_exists(Query(QCustomer)).explain()
    assert compile_exists(Query(QCustomer)).explain() == {
        "find": {"filter": {}, "projection": {"_id": 1}, "limit": 1}
    }
    assert compile_write(query.clone().__class__(QCustomer)).filter == {}
    with pytest.raises(QueryError, match="sliced"):
        compile_write(query)
    write = compile_write(joined)
    assert write.filter is None and write.pipeline is not None
    assert write.pipeline[-1] == {"$project": {"_id": 1}}


def test_compile_update() -> None:
    update = compile_update(
        QCustomer,
        {
            "age": F("age") + 1,
            "score": F("score") * 1.5,
            "tags": F("tags").push("young"),
            "scores": F("scores").add_to_set(1, "2"),
            "name": "Ann",
            "nick": None,
            "address__city": "Lyon",
            "meta": {"k": [1, 2]},
        },
    )
    assert update == {
        "$inc": {"age": 1},
        "$mul": {"score": 1.5},
        "$push": {"tags": "young"},
        "$addToSet": {"scores": {"$each": [1, 2]}},
        "$set": {"name": "Ann", "nick": None, "address.city": "Lyon", "meta": {"k": [1, 2]}},
    }
    assert compile_update(QCustomer, {"tags": F("tags").pull("a")}) == {"$pull": {"tags": "a"}}
    assert compile_update(QCustomer, {"tags": F("tags").pull("a", "b")}) == {
        "$pullAll": {"tags": ["a", "b"]}
    }
    assert compile_update(QOrder, {"items": F("items").pull({"sku": "x"})}) == {
        "$pullAll": {"items": [{"sku": "x"}]}
    }
    assert compile_update(QOrder, {"customer": OID}) == {"$set": {"customer": bson.ObjectId(OID)}}


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"age": -1},  # constraints apply to stored values
        {"name": "A"},
        {"name": None},
        {"name": {"$set": "x"}},
        {"meta": {"$where": "1"}},
        {"items": [{"$gt": ""}]},
        {"tags": F("tags").push({"$gt": 1})},
        {"id": OID},
        {"age": F("score") + 1},
        {"age": F("age") + 1.5},
        {"name": F("name") + 1},
        {"age": F("score")},
        {"age": F("age").push(1)},
        {"tags": F("scores").push(1)},
        {"customer__name": "x"},
        {"addresses__city": "x"},
        {"nope": 1},
        {"$inc": 1},
        {"address": None, "address__city": "x"},
    ],
)
def test_compile_update_refuses(values: dict[str, Any]) -> None:
    model = QOrder if {"items", "customer__name"} & values.keys() else QCustomer
    with pytest.raises(QueryError):
        compile_update(model, values)


def test_clone_copies_every_slot() -> None:
    """Query.clone spells its slots out (for speed): a slot added later must be copied too."""
    query = Query(QCustomer)
    for position, name in enumerate(Query.__slots__):
        if name not in ("model", "annotations"):
            object.__setattr__(query, name, ("marker", position))
    query.annotations = {"n": Count()}
    other = query.clone()
    for name in Query.__slots__:
        if name != "annotations":
            assert getattr(other, name) == getattr(query, name), name
    assert other.annotations == query.annotations
    assert other.annotations is not query.annotations


def test_cached_filter_keys_still_validate_every_value() -> None:
    """The meaning of a key is cached per model; the value is validated on every call."""
    first = Query(QCustomer)
    first.add_filter(age__gte=3, id=OID)
    assert compile_query(first).filter == {"age": {"$gte": 3}, "_id": bson.ObjectId(OID)}
    for bad in ({"age__gte": "old"}, {"id": "nope"}, {"email": {"$ne": 1}}):
        with pytest.raises(QueryError):
            Query(QCustomer).add_filter(**bad)
    again = Query(QCustomer)
    again.add_filter(age__gte="4")  # converted by the field's type, as the first time
    assert compile_query(again).filter == {"age": {"$gte": 4}}


def test_simple_find_falls_back_for_joined_ordering() -> None:
    """Ordering through a reference takes the pipeline path (the find fast path bails out)."""
    query = Query(QOrder)
    query.set_ordering("customer__name")
    assert isinstance(compile_query(query), CompiledPipeline)
