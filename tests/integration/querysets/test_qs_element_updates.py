"""update() inside lists (issue #21, item 3): F(list).each(...) ($[] and $[id] with
arrayFilters), .matched(...) ($) and .pull(Q(...)); paths only from keyword names, values
validated as the element's types."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from qs_support import QsCustomer, QsItem

import odm
from odm import F, Q


def _items(*specs: tuple[str, float, int]) -> list[QsItem]:
    return [QsItem(sku=sku, price=price, qty=qty) for sku, price, qty in specs]


async def _rows(customer: QsCustomer) -> list[tuple[str, float, int]]:
    got = await QsCustomer.objects.get(id=customer.id)
    return [(i.sku, i.price, i.qty) for i in got.items]


async def test_each_writes_every_element(odm_database: Any) -> None:
    ann = await QsCustomer(
        email="ann@x.io", name="Ann", items=_items(("pen", 1.0, 2), ("ink", 2.0, 5)),
        tags=["a", "b"],
    ).insert()
    one = QsCustomer.objects.filter(id=ann.id)
    assert await one.update(items=F("items").each(qty=F("qty") + 1, price=F("price") * 2)) == 1
    assert await _rows(ann) == [("pen", 2.0, 3), ("ink", 4.0, 6)]
    await one.update(tags=F("tags").each("z"))
    assert (await QsCustomer.objects.get(id=ann.id)).tags == ["z", "z"]


async def test_each_with_a_condition_writes_the_matching_elements(odm_database: Any) -> None:
    ann = await QsCustomer(
        email="ann@x.io", name="Ann",
        items=_items(("pen", 1.0, 2), ("ink", 2.0, 5), ("pad", 3.0, 0)),
    ).insert()
    bob = await QsCustomer(email="bob@x.io", name="Bob", items=_items(("pen", 1.5, 1))).insert()
    matched = await QsCustomer.objects.update(
        items=F("items").each(Q(sku="pen") | Q(qty__gte=5), qty=0, price=F("price").least(1.2))
    )
    assert matched == 2
    assert await _rows(ann) == [("pen", 1.0, 0), ("ink", 1.2, 0), ("pad", 3.0, 0)]
    assert await _rows(bob) == [("pen", 1.2, 0)]
    # Two lists with conditions in one update: odm names the arrayFilters itself.
    await QsCustomer.objects.filter(id=ann.id).update(
        items=F("items").each(~Q(sku="pad"), qty=9), scores=[1, 2]
    )
    assert await _rows(ann) == [("pen", 1.0, 9), ("ink", 1.2, 9), ("pad", 3.0, 0)]


async def test_matched_writes_the_element_the_filter_found(odm_database: Any) -> None:
    ann = await QsCustomer(
        email="ann@x.io", name="Ann", items=_items(("pen", 1.0, 2), ("ink", 2.0, 5)),
        tags=["old", "keep"],
    ).insert()
    one = QsCustomer.objects.filter(id=ann.id)
    assert await one.filter(items__sku="ink").update(items=F("items").matched(qty=7)) == 1
    assert await _rows(ann) == [("pen", 1.0, 2), ("ink", 2.0, 7)]
    await one.filter(tags="old").update(tags=F("tags").matched("new"))
    assert (await QsCustomer.objects.get(id=ann.id)).tags == ["new", "keep"]
    # Without a condition on the list, there is no matched element: said before sending.
    with pytest.raises(odm.QueryError, match="does not test 'items'"):
        await one.update(items=F("items").matched(qty=1))


async def test_pull_by_condition(odm_database: Any) -> None:
    ann = await QsCustomer(
        email="ann@x.io", name="Ann",
        items=_items(("pen", 1.0, 0), ("ink", 2.0, 5), ("pad", 3.0, 1)),
    ).insert()
    one = QsCustomer.objects.filter(id=ann.id)
    await one.update(items=F("items").pull(Q(qty__lt=1) | Q(sku="pad")))
    assert await _rows(ann) == [("ink", 2.0, 5)]
    await one.update(items=F("items").pull(~Q(sku="ink")))
    assert await _rows(ann) == [("ink", 2.0, 5)]


async def test_element_updates_are_checked_and_take_paths_only_from_names(
    odm_database: Any,
) -> None:
    qs = QsCustomer.objects.all()
    refused: list[tuple[dict[str, Any], str]] = [
        ({"items": F("items").each(qty="many")}, "items__qty"),
        ({"items": F("items").each(nope=1)}, "no field 'nope'"),
        ({"items": F("items").each(**{"$set": 1})}, "not allowed"),
        ({"items": F("items").each(**{"sku.x": 1})}, "not allowed"),
        ({"items": F("items").each(Q(sku={"$ne": 1}), qty=1)}, "'sku'"),
        ({"items": F("items").each(Q(qty__gt=F("price")), qty=1)}, "cannot use F"),
        ({"items": F("items").matched(Q(sku="a"), qty=1)}, "no Q"),
        ({"items": F("items").each("x")}, "fields as keywords"),
        ({"tags": F("tags").each(Q(sku="a"), "x")}, "list of models"),
        ({"tags": F("tags").each(1)}, "'tags'"),
        ({"age": F("age").each(1)}, "list field"),
        ({"items__qty": 1}, "each"),
        ({"items": F("items").pull(Q(sku="a"), "b")}, "given alone"),
        ({"items": F("tags").each(qty=1)}, "must name 'items'"),
    ]
    for values, message in refused:
        with pytest.raises(odm.QueryError, match=message):
            await qs.update(**values)
    # A body spread into each(): its keys are element field names, nothing else.
    for method in (F.each, F.matched):
        kinds = {p.kind for name, p in inspect.signature(method).parameters.items()
                 if name != "self"}
        assert kinds <= {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}
    with pytest.raises(odm.QueryError, match="no field 'where'"):
        await qs.update(items=F("items").each(**{"where": {"sku": "a"}}))
