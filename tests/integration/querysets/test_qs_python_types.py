"""values(), values_list(), annotate() and aggregate() give Python types, as loaded documents
do (issue #21, item 1); ``odm.to_jsonable`` turns any of them into JSON data."""

from __future__ import annotations

import datetime as dt
import enum
import json
from decimal import Decimal
from typing import Any

import bson
import pytest

import odm
from odm import Document, Embedded, Reference
from odm.aggregates import Avg, Count, Max, Min, Sum


class PtColor(enum.Enum):
    RED = "red"
    BLUE = "blue"


class PtDims(Embedded):
    width: odm.Decimal
    made: dt.date | None = None


class PtShop(Document):
    name: str

    class Meta:
        collection = "pt_shops"


class PtProduct(Document):
    name: str
    price: odm.Decimal
    qty: int = 0
    weight: float = 0.0
    color: PtColor = PtColor.RED
    added: dt.datetime
    dims: PtDims | None = None
    prices: list[odm.Decimal] = []
    shop: Reference[PtShop] | None = None
    extra: dict[str, Any] = {}

    class Meta:
        collection = "pt_products"


AT = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)


async def seed() -> tuple[PtShop, list[PtProduct]]:
    shop = await PtShop(name="corner").insert()
    products = [
        PtProduct(name="pen", price=Decimal("1.10"), qty=3, weight=0.5, added=AT,
                  dims=PtDims(width=Decimal("0.7"), made=dt.date(2024, 1, 2)),
                  prices=[Decimal("1.10"), Decimal("0.99")], shop=shop, extra={"n": 1}),
        PtProduct(name="ink", price=Decimal("2.25"), qty=1, color=PtColor.BLUE,
                  added=AT + dt.timedelta(days=1), shop=shop),
        PtProduct(name="pad", price=Decimal("3.30"), qty=2, added=AT - dt.timedelta(days=1)),
    ]
    await PtProduct.objects.bulk_create(products)
    return shop, products


async def test_values_convert_through_their_fields(odm_database: Any) -> None:
    shop, _ = await seed()
    loaded = await PtProduct.objects.get(name="pen")
    [row] = await PtProduct.objects.filter(name="pen").values(
        "id", "price", "color", "added", "dims", "dims__width", "prices", "shop", "extra"
    )
    assert row["price"] == Decimal("1.10") and type(row["price"]) is Decimal
    assert row["color"] is PtColor.RED
    assert row["added"] == AT and row["added"].tzinfo is not None
    assert row["added"] == loaded.added and type(row["added"]) is type(loaded.added)
    assert row["dims"] == loaded.dims  # the embedded model, as on the document
    assert row["dims__width"] == Decimal("0.7")
    assert row["prices"] == [Decimal("1.10"), Decimal("0.99")]
    assert row["shop"] == shop.id and isinstance(row["shop"], bson.ObjectId)  # the id
    assert row["id"] == loaded.id
    assert row["extra"] == {"n": 1}
    # every value as the loaded document holds it
    for name in ("price", "color", "added", "dims", "prices"):
        assert row[name] == getattr(loaded, name), name
    assert not any(isinstance(v, bson.Decimal128) for v in row.values())


async def test_values_list_flat_distinct_and_joined(odm_database: Any) -> None:
    await seed()
    prices = await PtProduct.objects.order_by("price").values_list("price", flat=True)
    assert prices == [Decimal("1.10"), Decimal("2.25"), Decimal("3.30")]
    assert all(type(p) is Decimal for p in prices)
    pairs = await PtProduct.objects.order_by("name").values_list("name", "color")
    assert pairs == [("ink", PtColor.BLUE), ("pad", PtColor.RED), ("pen", PtColor.RED)]
    colors = await PtProduct.objects.values("color").distinct().order_by("color")
    assert colors == [{"color": PtColor.BLUE}, {"color": PtColor.RED}]
    joined = await PtProduct.objects.filter(shop__name="corner").order_by("name").values_list(
        "shop__name", "price"
    )
    assert joined == [("corner", Decimal("2.25")), ("corner", Decimal("1.10"))]
    widths = await PtProduct.objects.filter(name="pen").values_list("dims__width", flat=True)
    assert widths == [Decimal("0.7")]
    missing = await PtProduct.objects.filter(name="ink").values_list("dims__width", flat=True)
    assert missing == [None]


async def test_aggregates_take_the_type_of_their_field(odm_database: Any) -> None:
    await seed()
    totals = await PtProduct.objects.aggregate(
        n=Count(), total=Sum("price"), low=Min("price"), high=Max("price"),
        avg=Avg("price"), qty=Sum("qty"), avg_qty=Avg("qty"), first=Min("added"),
        last=Max("color"), heavy=Max("weight"),
    )
    assert totals == {
        "n": 3, "total": Decimal("6.65"), "low": Decimal("1.10"), "high": Decimal("3.30"),
        "avg": Decimal("2.216666666666666666666666666666667"), "qty": 6, "avg_qty": 2.0,
        "first": AT - dt.timedelta(days=1), "last": PtColor.RED, "heavy": 0.5,
    }
    assert type(totals["total"]) is Decimal and type(totals["avg"]) is Decimal
    assert type(totals["qty"]) is int and type(totals["avg_qty"]) is float
    assert totals["first"].tzinfo is not None
    none = await PtProduct.objects.filter(qty=99).aggregate(total=Sum("price"), n=Count())
    assert none == {"total": None, "n": 0}


async def test_annotate_groups_in_python_types(odm_database: Any) -> None:
    await seed()
    rows = await (
        PtProduct.objects.values("color")
        .annotate(n=Count(), total=Sum("price"), top=Max("price"), avg=Avg("qty"))
        .order_by("color")
    )
    assert rows == [
        {"color": PtColor.BLUE, "n": 1, "total": Decimal("2.25"), "top": Decimal("2.25"),
         "avg": 1.0},
        {"color": PtColor.RED, "n": 2, "total": Decimal("4.40"), "top": Decimal("3.30"),
         "avg": 2.5},
    ]
    streamed = [row async for row in PtProduct.objects.values("color").annotate(
        total=Sum("price")).order_by("color").batch_size(1)]
    assert streamed == [{"color": PtColor.BLUE, "total": Decimal("2.25")},
                        {"color": PtColor.RED, "total": Decimal("4.40")}]
    # a value the field no longer accepts is shown as stored, not a failed read
    await PtProduct.objects.filter(name="pad").update(qty=5)
    coll = odm.get_database().get_collection("pt_products")
    await coll.update_one({"name": "pad"}, {"$set": {"color": "green"}})
    assert await PtProduct.objects.filter(name="pad").values_list("color", flat=True) == [
        "green"
    ]


async def test_to_jsonable_makes_json_data_of_every_result(odm_database: Any) -> None:
    shop, _ = await seed()
    pen = await PtProduct.objects.get(name="pen")
    doc = odm.to_jsonable(pen)
    assert doc == pen.model_dump(mode="json")
    assert doc["id"] == str(pen.id) and doc["price"] == "1.10"
    assert doc["added"] == "2024-05-01T12:30:00Z" and doc["shop"] == str(shop.id)
    report = {
        "rows": await PtProduct.objects.order_by("name").values("name", "price", "added", "shop"),
        "groups": await PtProduct.objects.values("color").annotate(total=Sum("price"))
        .order_by("color"),
        "totals": await PtProduct.objects.aggregate(total=Sum("price"), n=Count()),
        "docs": await PtProduct.objects.order_by("name")[:1],
        "raw": await PtProduct.objects.aggregate_pipeline([{"$project": {"price": 1}}]),
    }
    data = odm.to_jsonable(report)
    assert json.loads(json.dumps(data)) == data  # plain JSON all the way down
    assert data["rows"][0] == {"name": "ink", "price": "2.25",
                               "added": "2024-05-02T12:30:00Z", "shop": str(shop.id)}
    assert data["groups"] == [{"color": "blue", "total": "2.25"},
                              {"color": "red", "total": "4.40"}]
    assert data["totals"] == {"total": "6.65", "n": 3}
    assert data["docs"][0]["name"] == "ink" and data["docs"][0]["price"] == "2.25"
    assert {r["price"] for r in data["raw"]} == {"1.10", "2.25", "3.30"}  # raw Decimal128
    with pytest.raises(TypeError, match="object"):
        odm.to_jsonable({"x": object()})
