"""QuerySet features against the real server: ordering, slicing, projections, values,
grouping, relations, terminals, writes, errors, custom querysets, polymorphism, options."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError
from qs_support import (
    QsAnimal,
    QsCat,
    QsCustomer,
    QsCustomerQuerySet,
    QsDog,
    QsOrder,
    seed_people,
)

import odm
from odm import F, Invalid, Q, QueryError
from odm.aggregates import Avg, Count, Max, Min, StdDev, Sum
from odm.contrib.pytest import MonitoredDatabase
from odm.query.query import Query


async def test_ordering_and_slicing(odm_database: Any) -> None:
    await seed_people()
    # Meta.ordering = ["name"] applies by default
    assert [c.name for c in await QsCustomer.objects.all()] == ["Ann", "Bob", "Cid.Jr", "dee"]
    assert QsCustomer.objects.explain_query()["find"]["sort"] == {"name": 1}
    by_age = QsCustomer.objects.order_by("-age")
    assert [c.name for c in await by_age] == ["Cid.Jr", "Ann", "dee", "Bob"]
    assert [c.name for c in await QsCustomer.objects.order_by("address__city", "name")] == [
        "dee", "Bob", "Ann", "Cid.Jr"
    ]
    assert [c.name for c in await by_age[1:3]] == ["Ann", "dee"]
    assert [c.name for c in await by_age[1:][1:2]] == ["dee"]
    assert (await by_age[2]).name == "dee"
    with pytest.raises(IndexError):
        await by_age[10]
    with pytest.raises(QueryError):
        by_age[-1:]
    with pytest.raises(QueryError):
        by_age[::2]
    assert await by_age[1:3].count() == 2
    assert await by_age[3:].count() == 1
    assert (await by_age.first()).name == "Cid.Jr"  # type: ignore[union-attr]
    assert (await by_age.last()).name == "Bob"  # type: ignore[union-attr]
    assert (await QsCustomer.objects.first()).name == "Ann"  # type: ignore[union-attr]
    assert (await QsCustomer.objects.last()).name == "dee"  # type: ignore[union-attr]
    assert await QsCustomer.objects.filter(age=-1).first() is None
    assert await QsCustomer.objects.filter(age=-1).last() is None
    with pytest.raises(QueryError):
        await by_age[:2].last()
    assert [c.name for c in await by_age.to_list(length=2)] == ["Cid.Jr", "Ann"]
    assert len(await by_age.to_list()) == 4
    with pytest.raises(QueryError):
        await by_age[:2].update(age=1)


async def test_only_and_defer_load_partial_documents(odm_database: Any) -> None:
    await seed_people()
    rows = await QsCustomer.objects.only("name", "address__city").order_by("name")
    ann = rows[0]
    assert ann.name == "Ann"
    assert ann.address is not None and ann.address.city == "Paris"
    assert ann.model_fields_set == {"id", "name", "address"}
    assert "age" not in ann.model_fields_set
    with pytest.raises(QueryError, match="partial"):
        await ann.save()
    deferred = await QsCustomer.objects.defer("items", "meta").filter(name="dee")
    dee = deferred[0]
    assert dee.tags == ["vip", "spam", "a.b"]
    assert "items" not in dee.model_fields_set and "tags" in dee.model_fields_set
    with pytest.raises(QueryError):
        await dee.save()
    # defer(None) loads every field again, after only() or defer() (Django's spelling)
    for partial in (QsCustomer.objects.defer("items"), QsCustomer.objects.only("name")):
        (whole,) = await partial.defer(None).filter(name="dee")
        assert whole.model_fields_set >= {"items", "meta", "tags", "age"}
        await whole.save()  # whole again: nothing refused
    with pytest.raises(QueryError, match="defer"):
        QsCustomer.objects.defer("items", None)
    # the loaded fields are validated: a stored value of the wrong type fails, naming the _id
    await odm_database.qs_customers.update_one({"name": "Bob"}, {"$set": {"name": 12}})
    with pytest.raises(ValidationError, match="_id="):
        await QsCustomer.objects.only("name")
    rows = await QsCustomer.objects.only("age")  # name not loaded: the bad value is unseen
    assert len(rows) == 4
    lenient = await QsCustomer.objects.only("name").lenient()
    assert sum(isinstance(r, Invalid) for r in lenient) == 1


async def test_values_distinct_annotate_aggregate(odm_database: Any) -> None:
    await seed_people()
    await QsCustomer(email="eve@x.io", name="Eve", age=40, address={"city": "Paris"}).insert()
    assert await QsCustomer.objects.values_list("name", flat=True) == [
        "Ann", "Bob", "Cid.Jr", "Eve", "dee"
    ]
    rows = await QsCustomer.objects.filter(age__gte=30).values("name", "address__city")
    assert rows == [
        {"name": "Ann", "address__city": "Paris"},
        {"name": "Cid.Jr", "address__city": "paris"},
        {"name": "Eve", "address__city": "Paris"},
    ]
    assert await QsCustomer.objects.filter(name="dee").values("address__city", "nick") == [
        {"address__city": None, "nick": "D(ee)*"}
    ]
    assert await QsCustomer.objects.filter(name="Bob").values_list("name", "age") == [("Bob", 17)]
    cities = await QsCustomer.objects.values("address__city").distinct().order_by(
        "address__city"
    )
    assert cities == [{"address__city": None}, {"address__city": "Lyon"},
                      {"address__city": "Paris"}, {"address__city": "paris"}]
    groups = await (
        QsCustomer.objects.values("address__city")
        .annotate(n=Count(), oldest=Max("age"), youngest=Min("age"), avg=Avg("age"))
        .order_by("-n", "address__city")
    )
    assert groups[0] == {"address__city": "Paris", "n": 2, "oldest": 40, "youngest": 34,
                         "avg": 37.0}
    assert [g["address__city"] for g in groups] == ["Paris", None, "Lyon", "paris"]
    # filter and order on annotations, applied after $group, all in one pipeline
    big = QsCustomer.objects.values("address__city").annotate(n=Count()).filter(n__gte=2)
    assert await big == [{"address__city": "Paris", "n": 2}]
    stages = big.explain_query()["aggregate"]
    assert [next(iter(s)) for s in stages] == ["$group", "$project", "$match"]
    flat = QsCustomer.objects.values_list("address__city", flat=True).annotate(n=Count())
    assert sorted(await flat.filter(n=1), key=str) == ["Lyon", None, "paris"]
    totals = await QsCustomer.objects.aggregate(
        n=Count(), avg_age=Avg("age"), total=Sum("score"), top=Max("age"), low=Min("name"),
        spread=StdDev("age"), with_nick=Count("nick"), cities=Count("address__city",
                                                                      distinct=True),
    )
    assert totals["n"] == 5 and totals["avg_age"] == pytest.approx((34 + 17 + 52 + 25 + 40) / 5)
    assert totals["total"] == pytest.approx(19.5) and totals["top"] == 52
    assert totals["low"] == "Ann" and totals["with_nick"] == 2 and totals["cities"] == 3
    assert totals["spread"] > 0
    empty = await QsCustomer.objects.filter(age__gt=100).aggregate(n=Count(), a=Avg("age"))
    assert empty == {"n": 0, "a": None}
    doubled = await QsCustomer.objects.filter(name="Bob").aggregate(s=Sum(F("age") * 2))
    assert doubled == {"s": 34}


async def test_select_related_and_aggregate_across_reference(odm_database: Any) -> None:
    people = await seed_people()
    await QsOrder.objects.bulk_create([
        QsOrder(customer=people["Ann"], total=10),
        QsOrder(customer=people["Bob"], total=20),
        QsOrder(customer=people["Ann"], total=5),
    ])
    orders = await QsOrder.objects.select_related("customer").order_by("total")
    assert [o.customer.document.name for o in orders] == ["Ann", "Ann", "Bob"]  # type: ignore[union-attr]
    assert isinstance(orders[0].customer.document, QsCustomer)
    plain = await QsOrder.objects.order_by("total")
    assert plain[0].customer.document is None
    adults = await QsOrder.objects.select_related("customer").filter(customer__age__gte=18)
    assert sorted(o.total for o in adults) == [5, 10]
    assert all(o.customer.document is not None for o in adults)
    by_city = await (
        QsOrder.objects.values("customer__name").annotate(spent=Sum("total"))
        .order_by("customer__name")
    )
    assert by_city == [{"customer__name": "Ann", "spent": 15.0},
                       {"customer__name": "Bob", "spent": 20.0}]
    assert await QsOrder.objects.aggregate(age=Avg("customer__age")) == {
        "age": pytest.approx((34 + 17 + 34) / 3)
    }
    assert await QsOrder.objects.values_list("customer__email", flat=True).order_by("total") == [
        "ann@x.io", "ann@x.io", "bob@x.io"
    ]


async def test_prefetch_related_is_one_query_per_relation(monitored: MonitoredDatabase) -> None:
    people = await seed_people()
    await QsOrder.objects.bulk_create([
        QsOrder(customer=people["Ann"], total=i, watchers=[people["Bob"], people["dee"]])
        for i in range(30)
    ])
    monitored.log.clear()
    orders = await QsOrder.objects.prefetch_related("customer", "watchers")
    assert len(orders) == 30
    assert monitored.log.names() == ["find", "find", "find"]
    assert all(o.customer.document is not None for o in orders)
    assert {w.document.name for o in orders for w in o.watchers} == {"Bob", "dee"}  # type: ignore[union-attr]
    with pytest.raises(QueryError):
        QsOrder.objects.prefetch_related("total")
    with pytest.raises(QueryError):
        QsOrder.objects.select_related("watchers")


async def test_terminals(odm_database: Any) -> None:
    people = await seed_people()
    assert (await QsCustomer.objects.get(email="bob@x.io")).name == "Bob"
    with pytest.raises(QsCustomer.DoesNotExist) as missing:
        await QsCustomer.objects.get(email="zed@x.io")
    assert isinstance(missing.value, odm.DoesNotExist)
    assert not isinstance(missing.value, QsOrder.DoesNotExist)
    assert "zed@x.io" in str(missing.value)
    with pytest.raises(QsCustomer.MultipleObjectsReturned):
        await QsCustomer.objects.get(tags__contains="vip")
    with pytest.raises(odm.MultipleObjectsReturned):
        await QsCustomer.objects.filter(age__gte=18).get()
    assert await QsCustomer.objects.count() == 4
    assert await QsCustomer.objects.filter(age__gte=100).exists() is False
    bulk = await QsCustomer.objects.in_bulk([people["Ann"].id, people["Bob"].id])
    assert {k: v.name for k, v in bulk.items()} == {people["Ann"].id: "Ann",
                                                     people["Bob"].id: "Bob"}
    assert len(await QsCustomer.objects.filter(age__gte=18).in_bulk()) == 3

    doc, created = await QsCustomer.objects.get_or_create(email="ann@x.io",
                                                          defaults={"name": "X"})
    assert (doc.name, created) == ("Ann", False)
    doc, created = await QsCustomer.objects.get_or_create(email="fay@x.io",
                                                          defaults={"name": "Fay", "age": 3})
    assert (doc.name, doc.age, created) == ("Fay", 3, True)
    assert (await QsCustomer.objects.get(email="fay@x.io")).age == 3
    doc, created = await QsCustomer.objects.update_or_create({"age": 4},
                                                             email="fay@x.io")
    assert (doc.age, created) == (4, False)
    assert (await QsCustomer.objects.get(email="fay@x.io")).age == 4
    doc, created = await QsCustomer.objects.update_or_create(
        {"name": "Gus", "age": 9}, email="gus@x.io")
    assert created and (await QsCustomer.objects.get(email="gus@x.io")).age == 9

    # update() and delete() return counts; F updates
    assert await QsCustomer.objects.filter(age__lt=18).update(age=F("age") + 1) == 3
    assert (await QsCustomer.objects.get(name="Bob")).age == 18
    assert await QsCustomer.objects.filter(name="Ann").update(score=F("score") * 2) == 1
    assert (await QsCustomer.objects.get(name="Ann")).score == 15.0
    await QsCustomer.objects.filter(name="Ann").update(tags=F("tags").push("new", "x"))
    await QsCustomer.objects.filter(name="Ann").update(tags=F("tags").pull("paris"))
    await QsCustomer.objects.filter(name="Ann").update(tags=F("tags").add_to_set("vip", "y"))
    assert (await QsCustomer.objects.get(name="Ann")).tags == ["vip", "new", "x", "y"]
    await QsCustomer.objects.filter(name="Ann").update(tags=F("tags").pull("x", "y"))
    assert (await QsCustomer.objects.get(name="Ann")).tags == ["vip", "new"]
    assert await QsCustomer.objects.filter(name="Ann").update(
        address__city="Nice", nick=None) == 1
    ann = await QsCustomer.objects.get(name="Ann")
    assert ann.address is not None and (ann.address.city, ann.nick) == ("Nice", None)
    assert await QsCustomer.objects.filter(name="nobody").update(age=1) == 0
    assert await QsCustomer.objects.filter(Q(name="Fay") | Q(name="Gus")).delete() == 2
    assert await QsCustomer.objects.count() == 4


async def test_get_or_create_race_on_a_unique_index(odm_database: Any) -> None:
    await odm.ensure_indexes(models=[QsCustomer])
    results = await asyncio.gather(*(
        QsCustomer.objects.get_or_create(email="race@x.io", defaults={"name": f"r{i}"})
        for i in range(8)
    ))
    assert sum(created for _, created in results) == 1
    assert len({doc.id for doc, _ in results}) == 1
    assert await QsCustomer.objects.filter(email="race@x.io").count() == 1


async def test_bulk_create_is_one_insert_many(monitored: MonitoredDatabase) -> None:
    docs = [QsCustomer(email=f"u{i}@x.io", name=f"u{i}") for i in range(50)]
    assert await QsCustomer.objects.bulk_create(docs) == docs
    assert monitored.log.names() == ["insert"]
    assert len(monitored.log.named("insert")[0]["documents"]) == 50
    assert all(d.is_stored for d in docs)
    assert await QsCustomer.objects.bulk_create([]) == []
    with pytest.raises(QueryError):
        await QsCustomer.objects.bulk_create([QsOrder(customer=docs[0], total=1)])


async def test_explain_shows_the_index(odm_database: Any) -> None:
    await seed_people()
    await odm.ensure_indexes(models=[QsCustomer])
    plan = await QsCustomer.objects.filter(email="ann@x.io").explain()
    assert "email" in str(plan["queryPlanner"]["winningPlan"])
    assert "IXSCAN" in str(plan["queryPlanner"]["winningPlan"])
    plan = await QsCustomer.objects.filter(age__gt=3).explain()
    assert "COLLSCAN" in str(plan["queryPlanner"]["winningPlan"])
    plan = await QsOrder.objects.filter(customer__email="ann@x.io").explain()
    assert "stages" in plan or "queryPlanner" in plan


async def test_bad_stored_documents(odm_database: Any) -> None:
    await seed_people()
    bad = await odm_database.qs_customers.insert_one({"email": "bad@x.io", "name": "Bad",
                                                      "age": "old"})
    with pytest.raises(ValidationError) as error:
        await QsCustomer.objects.all()
    assert str(bad.inserted_id) in str(error.value) and "age" in str(error.value)
    with pytest.raises(ValidationError):
        async for _ in QsCustomer.objects.batch_size(2):
            pass
    rows = [row async for row in QsCustomer.objects.lenient().batch_size(2)]
    assert len(rows) == 5
    invalid = [r for r in rows if isinstance(r, Invalid)]
    assert len(invalid) == 1 and invalid[0].raw["_id"] == bad.inserted_id
    assert isinstance(invalid[0].error, ValidationError)
    assert {r.name for r in rows if isinstance(r, QsCustomer)} == {"Ann", "Bob", "Cid.Jr", "dee"}


async def test_custom_queryset_and_polymorphism(odm_database: Any) -> None:
    await seed_people()
    qs = QsCustomer.objects.adults().named("A")
    assert isinstance(qs, QsCustomerQuerySet)
    assert isinstance(qs.order_by("age").filter(age__lt=99), QsCustomerQuerySet)
    assert [c.name for c in await qs] == ["Ann"]
    assert [c.name for c in await QsCustomer.objects.filter(tags__contains="vip").adults()] == [
        "Ann", "dee"
    ]
    await QsAnimal.objects.bulk_create([QsAnimal(name="a"), QsCat(name="c", lives=3),
                                        QsDog(name="d")])
    animals = await QsAnimal.objects.order_by("name")
    assert [type(a) for a in animals] == [QsAnimal, QsCat, QsDog]
    assert [c.name for c in await QsCat.objects.all()] == ["c"]
    assert await QsCat.objects.count() == 1
    assert await QsDog.objects.filter(name="c").exists() is False
    assert await QsCat.objects.filter(lives=3).update(lives=4) == 1
    assert await QsDog.objects.delete() == 1
    assert await QsAnimal.objects.count() == 2
    assert await QsCat.objects.aggregate(n=Count()) == {"n": 1}
    assert await QsCat.objects.values_list("name", flat=True) == ["c"]


async def test_timeouts_and_read_preference(odm_database: Any) -> None:
    await seed_people()
    with pytest.raises(ValueError, match="positive"):
        QsCustomer.objects.timeout(0)
    rows = await QsCustomer.objects.read_preference("secondaryPreferred").filter(age__gt=20)
    assert len(rows) == 3
    assert await QsCustomer.objects.read_preference("primary").count() == 4
    admin = odm.get_client().admin
    for command, run in (
        ("find", lambda qs: qs.to_list()),
        ("find", lambda qs: qs.first()),
        ("aggregate", lambda qs: qs.values("name").to_list()),
        ("aggregate", lambda qs: qs.count()),
        ("update", lambda qs: qs.update(age=1)),
        ("delete", lambda qs: qs.filter(age=-5).delete()),
    ):
        await admin.command({
            "configureFailPoint": "failCommand", "mode": {"times": 1},
            "data": {"failCommands": [command], "blockConnection": True, "blockTimeMS": 250},
        })
        try:
            with pytest.raises(odm.OperationTimeout):
                await run(QsCustomer.objects.filter(age__gte=0).timeout(0.05))
        finally:
            await admin.command({"configureFailPoint": "failCommand", "mode": "off"})


async def test_chaining_is_immutable_and_lazy(monitored: MonitoredDatabase) -> None:
    await seed_people()
    monitored.log.clear()
    base = QsCustomer.objects.filter(age__gte=18)
    before = base.explain_query()
    query_before: Query = base.query
    derived = [
        base.filter(name="Ann"), base.exclude(name="Ann"), base.order_by("-age"), base[1:2],
        base.only("name"), base.defer("tags"), base.values("name"), base.values_list("name"),
        base.values_list("name", flat=True), base.values("name").distinct(),
        base.values("address__city").annotate(n=Count()), base.batch_size(10),
        base.timeout(5), base.read_preference("secondaryPreferred"), base.lenient(),
        base.all(), base.adults(),
    ]
    for other in derived:
        assert other is not base
        assert base.explain_query() == before
    assert base.query is query_before and base.query.ordering is None
    assert base.query.timeout is None and not base.query.lenient
    related = QsOrder.objects.all()
    related_before = related.explain_query()
    related.select_related("customer")
    related.prefetch_related("watchers")
    assert related.explain_query() == related_before
    assert monitored.log.commands == []  # nothing was sent
    assert {c.name for c in await base} == {"Ann", "Cid.Jr", "dee"}
    assert monitored.log.names() == ["find"]
    # awaiting twice runs twice (no cache), iteration streams the same rows
    assert len(await base) == 3
    assert [c.name async for c in base] == ["Ann", "Cid.Jr", "dee"]
    assert monitored.log.names() == ["find", "find", "find"]
