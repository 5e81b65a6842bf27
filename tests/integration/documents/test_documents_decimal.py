"""``odm.Decimal`` fields against the real server: stored as BSON Decimal128, loaded back as
``decimal.Decimal`` with their digits and exponent, and query values sent as Decimal128."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import bson
import pytest

from odm import executor
from odm.contrib.pytest import MonitoredDatabase as Monitored
from odm.document import Document, Embedded
from odm.exceptions import QueryError
from odm.models.fields import Decimal


class DecLine(Embedded):
    sku: str
    price: Decimal


class DecProduct(Document):
    name: str
    price: Decimal
    discount: Decimal | None = None
    history: list[Decimal] = []
    lines: list[DecLine] = []

    class Meta:
        collection = "dec_products"


def filters(monitored: Monitored) -> list[dict[str, Any]]:
    return [command["filter"] for command in monitored.log.named("find")]


async def test_stored_as_decimal128_and_loaded_as_decimal(monitored: Monitored) -> None:
    product = await DecProduct(
        name="pen", price=D("1.50"), history=[D("1.2"), D("-0")],
        lines=[DecLine(sku="a", price=D("0.10"))],
    ).insert()
    raw = await executor.find_one(DecProduct, {"_id": product.id})
    assert raw is not None
    assert raw["price"] == bson.Decimal128("1.50") and raw["discount"] is None
    assert raw["history"] == [bson.Decimal128("1.2"), bson.Decimal128("-0")]
    assert raw["lines"][0]["price"] == bson.Decimal128("0.10")

    loaded = await DecProduct.objects.get(id=product.id)
    assert isinstance(loaded.price, D) and str(loaded.price) == "1.50"  # digits kept
    assert [str(v) for v in loaded.history] == ["1.2", "-0"]
    assert loaded.lines[0].price == D("0.10")
    assert loaded.model_dump_json(include={"price"}) == '{"price":"1.50"}'

    monitored.log.clear()
    await loaded.save()
    assert monitored.log.named("update") == []  # reading back changes nothing
    loaded.price = D("2.25")
    await loaded.save()
    (update,) = monitored.log.named("update")
    assert update["updates"][0]["u"] == {"$set": {"price": bson.Decimal128("2.25")}}
    assert (await loaded.refresh()).price == D("2.25")


async def test_query_values_are_sent_as_decimal128(monitored: Monitored) -> None:
    for name, price in [("a", "0.5"), ("b", "1.5"), ("c", "2"), ("d", "10.25")]:
        await DecProduct(name=name, price=D(price), discount=D("0.1")).insert()
    monitored.log.clear()

    found = await DecProduct.objects.filter(price__gte=D("1.5"))
    assert sorted(p.name for p in found) == ["b", "c", "d"]
    assert filters(monitored) == [{"price": {"$gte": bson.Decimal128("1.5")}}]

    # Numbers and strings are validated as decimals too.
    assert await DecProduct.objects.filter(price__lt="1").count() == 1
    assert await DecProduct.objects.filter(price__in=[2, "10.25"]).count() == 2
    assert await DecProduct.objects.filter(price=D("2.00")).count() == 1  # numeric equality
    ordered = await DecProduct.objects.order_by("-price").values_list("name", flat=True)
    assert ordered == ["d", "c", "b", "a"]

    await DecProduct.objects.filter(name="a").update(price=D("3.10"))
    raw = await executor.find_one(DecProduct, {"name": "a"})
    assert raw is not None and raw["price"] == bson.Decimal128("3.10")

    with pytest.raises(QueryError, match="price"):
        DecProduct.objects.filter(price__gte="cheap")
