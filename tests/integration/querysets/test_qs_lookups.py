"""Every lookup against the real server: scalar, embedded, list, list-of-embedded, dict fields
and across a Reference (a $lookup stage)."""

from __future__ import annotations

from typing import Any

import pytest
from qs_support import QsCustomer, QsItem, QsOrder, seed_people

from odm import F, Q, QueryError

# (filter kwargs, names expected): one row per lookup and per kind of field it applies to.
CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({"name": "Ann"}, {"Ann"}),
    ({"name__exact": "Ann"}, {"Ann"}),
    ({"name__iexact": "ANN"}, {"Ann"}),
    ({"name__iexact": "an"}, set()),
    ({"name__contains": "nn"}, {"Ann"}),
    ({"name__contains": "."}, {"Cid.Jr"}),  # a literal dot, not "any character"
    ({"name__icontains": "D"}, {"Cid.Jr", "dee"}),
    ({"name__in": ["Ann", "Bob", "nobody"]}, {"Ann", "Bob"}),
    ({"name__nin": ["Ann", "Bob"]}, {"Cid.Jr", "dee"}),
    ({"age__gt": 25}, {"Ann", "Cid.Jr"}),
    ({"age__gte": 25}, {"Ann", "Cid.Jr", "dee"}),
    ({"age__lt": 25}, {"Bob"}),
    ({"age__lte": 25}, {"Bob", "dee"}),
    ({"age__gte": "25"}, {"Ann", "Cid.Jr", "dee"}),  # converted by the field's type
    ({"age__ne": 17}, {"Ann", "Cid.Jr", "dee"}),
    ({"name__startswith": "C"}, {"Cid.Jr"}),
    ({"name__startswith": "c"}, set()),
    ({"name__istartswith": "D"}, {"dee"}),
    ({"name__endswith": "b"}, {"Bob"}),
    ({"name__iendswith": "JR"}, {"Cid.Jr"}),
    ({"name__endswith": "Jr\n"}, set()),  # \z, not $: no match before a trailing newline
    ({"age__range": (17, 25)}, {"Bob", "dee"}),
    ({"score__range": (3.0, 7.5)}, {"Ann", "Bob"}),
    ({"nick__isnull": True}, {"Bob", "Cid.Jr"}),
    ({"nick__isnull": False}, {"Ann", "dee"}),
    ({"nick": None}, {"Bob", "Cid.Jr"}),
    ({"meta__source__exists": True}, {"Ann", "Bob"}),
    ({"meta__source__exists": False}, {"Cid.Jr", "dee"}),
    ({"meta__source": "web"}, {"Ann"}),
    ({"name__regex": r"^[AB]"}, {"Ann", "Bob"}),
    ({"name__iregex": r"^d"}, {"dee"}),
    ({"nick__contains": "(ee)*"}, {"dee"}),  # metacharacters match themselves
    ({"nick__startswith": "D(e"}, {"dee"}),
    # embedded fields
    ({"address__city": "Paris"}, {"Ann"}),
    ({"address__city__iexact": "paris"}, {"Ann", "Cid.Jr"}),
    ({"address__city__in": ["Lyon", "Rome"]}, {"Bob"}),
    ({"address__city__startswith": "p"}, {"Cid.Jr"}),
    ({"address__zip__isnull": True}, {"Bob", "Cid.Jr", "dee"}),
    ({"address__isnull": True}, {"dee"}),
    ({"address__zip__exists": True}, {"Ann", "Bob", "Cid.Jr"}),
    # list of scalars
    ({"tags": "young"}, {"Bob"}),
    ({"tags": ["vip", "paris"]}, {"Ann"}),  # a list value compares the whole list
    ({"tags__contains": "vip"}, {"Ann", "dee"}),
    ({"tags__contains": "a.b"}, {"dee"}),
    ({"tags__icontains": "VIP"}, {"Ann", "dee"}),
    ({"tags__in": ["young", "spam"]}, {"Bob", "dee"}),
    ({"tags__nin": ["vip"]}, {"Bob", "Cid.Jr"}),
    ({"tags__startswith": "pa"}, {"Ann"}),
    ({"tags__all": ["vip", "spam"]}, {"dee"}),
    ({"tags__all": ["vip"]}, {"Ann", "dee"}),
    ({"tags__size": 2}, {"Ann"}),
    ({"tags__size": 0}, {"Cid.Jr"}),
    ({"scores__gt": 90}, {"Ann", "dee"}),
    ({"scores__elemmatch": {"gte": 85, "lt": 90}}, {"dee"}),
    ({"scores__size": 3}, {"dee"}),
    # list of embedded models
    ({"items__sku": "C3"}, {"dee"}),
    ({"items__price__gt": 50}, {"Ann"}),
    ({"items__qty__gte": 2}, {"Ann", "dee"}),
    ({"items__sku__in": ["B2", "C3"]}, {"Ann", "dee"}),
    ({"items__elemmatch": {"sku": "A1", "price__gt": 11}}, {"Bob"}),
    ({"items__elemmatch": Q(sku="A1") & Q(qty__gte=2)}, {"Ann"}),
    # sku A1 and price > 50 on DIFFERENT elements: matches without elemMatch only
    ({"items__sku": "A1", "items__price__gt": 50}, {"Ann"}),
    ({"items__elemmatch": {"sku": "A1", "price__gt": 50}}, set()),
    ({"items__size": 0}, {"Cid.Jr"}),
]


async def test_each_lookup(odm_database: Any) -> None:
    people = await seed_people()
    ann = people["Ann"]
    for kwargs, expected in CASES:
        qs = QsCustomer.objects.filter(**kwargs)
        found = {c.name for c in await qs}
        assert found == expected, (kwargs, qs.explain_query())
        assert await qs.count() == len(expected), kwargs
        assert await qs.exists() == bool(expected), kwargs
    assert [c.name for c in await QsCustomer.objects.filter(id=ann.id)] == ["Ann"]
    assert [c.name for c in await QsCustomer.objects.filter(id=str(ann.id))] == ["Ann"]
    ids = [people["Bob"].id, people["dee"].id]
    assert {c.name for c in await QsCustomer.objects.filter(id__in=ids)} == {"Bob", "dee"}


async def test_q_and_f(odm_database: Any) -> None:
    await seed_people()

    async def names(*args: Q, **kwargs: Any) -> set[str]:
        return {c.name for c in await QsCustomer.objects.filter(*args, **kwargs)}

    assert await names(Q(age__lt=18) | Q(name__startswith="A")) == {"Ann", "Bob"}
    assert await names(Q(age__gte=18) & Q(tags__contains="vip")) == {"Ann", "dee"}
    assert await names(~Q(tags__contains="vip")) == {"Bob", "Cid.Jr"}
    assert await names(~(Q(age__lt=18) | Q(age__gt=50))) == {"Ann", "dee"}
    assert await names(Q(age__gte=18), ~Q(address__city="Paris")) == {"Cid.Jr", "dee"}
    # exclude is NOT (a AND b); a document missing the field matches a negation
    excluded = QsCustomer.objects.exclude(age__gte=18, tags__contains="vip")
    assert {c.name for c in await excluded} == {"Bob", "Cid.Jr"}
    assert {c.name for c in await QsCustomer.objects.exclude(address__city="Paris")} == {
        "Bob", "Cid.Jr", "dee"
    }
    # F in filters: $expr comparing two fields, with arithmetic
    assert await names(score__gt=F("score")) == set()
    assert await names(age__gt=F("score") * 5) == {"Bob", "Cid.Jr", "dee"}
    assert await names(age__lte=F("score") + 14) == {"Bob"}
    assert await names(Q(age__lte=F("score") + 14) | Q(name="dee")) == {"Bob", "dee"}


async def test_lookups_across_a_reference(odm_database: Any) -> None:
    people = await seed_people()
    orders = [
        QsOrder(customer=people["Ann"], total=10, paid=10),
        QsOrder(customer=people["Bob"], total=20, paid=5),
        QsOrder(customer=people["dee"], total=30),
    ]
    await QsOrder.objects.bulk_create(orders)
    qs = QsOrder.objects.filter(customer__age__gte=18)
    assert "$lookup" in qs.explain_query()["aggregate"][0]
    assert sorted(o.total for o in await qs) == [10, 30]
    assert await qs.count() == 2
    assert await qs.exists()
    assert sorted(o.total for o in await QsOrder.objects.filter(
        customer__address__city__iexact="PARIS")) == [10]
    assert sorted(o.total for o in await QsOrder.objects.filter(
        customer__tags__contains="vip", total__gt=15)) == [30]
    assert [o.total for o in await QsOrder.objects.filter(customer=people["Bob"])] == [20]
    assert [o.total for o in await QsOrder.objects.filter(customer__id=people["Bob"].id)] == [20]
    # ordering across the reference
    ordered = await QsOrder.objects.order_by("-customer__age")
    assert [o.total for o in ordered] == [10, 30, 20]
    # a write through the join: the ids are looked up first
    assert await QsOrder.objects.filter(customer__age__lt=18).update(status="minor") == 1
    assert [o.status for o in await QsOrder.objects.filter(total=20)] == ["minor"]
    assert await QsOrder.objects.filter(customer__name="dee").delete() == 1
    assert await QsOrder.objects.count() == 2


@pytest.mark.odm_drivers("pymongo")
async def test_misfit_lookups_are_refused_before_sending(odm_database: Any) -> None:
    for kwargs in (
        {"age__icontains": "1"},
        {"name__size": 2},
        {"age__all": [1]},
        {"nope": 1},
        {"name": {"$ne": None}},
        {"tags__elemmatch": "x"},
        {"address": {"$gt": ""}},
        {"tags__size": 2**31},
        {"tags__size": -1},
    ):
        with pytest.raises(QueryError):
            QsCustomer.objects.filter(**kwargs)


async def test_elemmatch_with_an_f_expression_is_refused_when_built(odm_database: Any) -> None:
    """The server refuses $expr inside $elemMatch; odm says so at filter() time, naming the
    lookup, instead of sending a command that fails with an untyped server error."""
    await QsCustomer(
        email="a@x.io", name="Ann", items=[QsItem(sku="A1", price=10.0, qty=3)]
    ).insert()
    for condition in (
        Q(qty__gt=F("price")),
        Q(sku="A1") & Q(qty__gt=F("price") + 1),
        Q(sku="B") | ~Q(price__lte=F("qty")),
    ):
        with pytest.raises(QueryError, match=r"items__elemmatch .*F\(\)") as caught:
            QsCustomer.objects.filter(items__elemmatch=condition)
        assert caught.value.field == "items"
    # The same comparison with plain values is sent and matches.
    assert await QsCustomer.objects.filter(items__elemmatch=Q(qty__gt=2)).count() == 1
