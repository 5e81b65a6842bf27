"""Typing sample, checked by mypy --strict in tests/integration/querysets/test_qs_typing.py.

Not collected by pytest (its name does not start with test_); never run, only type-checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, assert_type

from odm import (
    Box,
    Circle,
    Document,
    DuplicateKey,
    F,
    Geometry,
    Greatest,
    Index,
    Invalid,
    Least,
    LineString,
    MultiPolygon,
    Near,
    Now,
    Point,
    Polygon,
    Q,
    QuerySet,
    Reference,
    UnsavedReference,
    annotations_of,
    to_jsonable,
)
from odm.changestream import ChangeStream
from odm.query.expressions import ArrayUpdate, ElementUpdate
from odm.queryset import ChangeEvent


class Customer(Document):
    name: str
    age: int = 0


class CustomerQuerySet(QuerySet["Shopper"]):
    def adults(self) -> CustomerQuerySet:
        return self.filter(age__gte=18)


class Shopper(Document):
    name: str
    age: int = 0

    objects = CustomerQuerySet.as_manager()


class Order(Document):
    customer: Reference[Customer]
    total: float


async def sample() -> None:
    qs = Customer.objects.filter(age__gte=18)
    assert_type(qs, QuerySet[Customer])
    assert_type(await qs, list[Customer])
    assert_type(await Customer.objects.filter(name="a").exclude(age=3), list[Customer])
    assert_type(await qs.order_by("-age")[:10], list[Customer])
    assert_type(await qs.first(), Customer | None)
    assert_type(await qs.last(), Customer | None)
    assert_type(await qs.get(name="Ann"), Customer)
    assert_type(await qs[3], Customer)
    assert_type(await qs.to_list(length=5), list[Customer])
    assert_type(await qs.count(), int)
    assert_type(await qs.exists(), bool)
    assert_type(await qs.update(age=1), int)
    assert_type(await qs.delete(), int)
    assert_type(await qs.get_or_create(name="Bo"), tuple[Customer, bool])
    assert_type(await qs.in_bulk(), dict[Any, Customer])
    assert_type(await qs.aggregate(), dict[str, Any])
    assert_type(await qs.values("name"), list[dict[str, Any]])
    assert_type(await qs.only("name"), list[Customer])
    assert_type(await qs.lenient(), list[Customer | Invalid])
    assert_type(qs.none(), QuerySet[Customer])
    assert_type(await qs.none(), list[Customer])
    assert_type(Shopper.objects.adults().none(), CustomerQuerySet)
    async for customer in qs.batch_size(100):
        assert_type(customer, Customer)
    assert_type(F("tags").each(Q(sku="a"), qty=1), ElementUpdate)
    assert_type(F("tags").matched("x"), ElementUpdate)
    assert_type(F("tags").pull(Q(qty__lt=1)), ArrayUpdate)
    assert_type(F("age").least(3), Least)
    assert_type(F("age").greatest(3), Greatest)
    assert_type(await qs.update(age=Least(F("age"), 3), name=Now()), int)
    async for change in qs.watch():
        assert_type(change, ChangeEvent[Customer])
        assert_type(change.document, Customer | None)
    async with qs.watch(full_document="default") as stream:
        assert_type(stream, ChangeStream[Customer])
        assert_type(stream.resume_token, dict[str, Any] | None)
        async for change in stream:
            assert_type(change.before, Customer | None)
            assert_type(change.resume_token, dict[str, Any])
        assert_type(await stream.try_next(), ChangeEvent[Customer] | None)
    opened = await qs.watch(resume_after={"_data": "00"})
    assert_type(opened, ChangeStream[Customer])
    await opened.close()

    shoppers = Shopper.objects.adults().filter(name__startswith="A").adults()
    assert_type(shoppers, CustomerQuerySet)
    assert_type(await shoppers, list[Shopper])
    assert_type(await shoppers.first(), Shopper | None)

    orders = await Order.objects.select_related("customer")
    assert_type(orders, list[Order])
    assert_type(orders[0].customer, Reference[Customer])
    assert_type(orders[0].customer.document, Customer | None)


async def duplicate_key() -> None:
    try:
        await Customer(name="a").insert()
    except DuplicateKey as exc:
        assert_type(exc.model, type[Any] | None)
        assert_type(exc.collection, str | None)
        assert_type(exc.index, str | None)
        assert_type(exc.key, dict[str, Any])
        assert_type(exc.fields, tuple[str, ...])


async def json_data() -> None:
    rows = await Customer.objects.values("name")
    assert_type(to_jsonable(rows), Any)


async def references() -> None:
    orders = await Order.objects.select_related("customer")
    assert_type(to_jsonable(orders, references="nested"), Any)
    assert_type(orders[0].model_dump(mode="json", context={"references": "nested"}), dict[str, Any])
    try:
        await Order(customer=Customer(name="draft"), total=1).insert()
    except UnsavedReference as exc:
        assert_type(exc.field, str | None)


class Place(Document):
    name: str
    loc: Point
    area: Geometry | None = None

    class Meta:
        indexes = [Index(("loc", "2dsphere")), Index(text=["name"])]


async def geo_search_collation() -> None:
    here = Point(2.35, 48.85)
    assert_type(here.lon, float)
    assert_type(here.coordinates, tuple[float, float])
    assert_type(Polygon.box(0, 0, 1, 1), Polygon)
    Polygon([(0, 0), (1, 0), (1, 1), (0, 0)])
    LineString([(0, 0), (1, 1)])
    MultiPolygon([Polygon.box(0, 0, 1, 1).coordinates])
    near = Place.objects.filter(loc__near=Near(here, max_distance=500, min_distance=None))
    assert_type(near, QuerySet[Place])
    assert_type(await Place.objects.filter(loc__within=Circle(here, 100.0)), list[Place])
    Place.objects.filter(loc__within=Box(0, 0, 1, 1), area__intersects=here)
    by_distance = Place.objects.geo_near("loc", here, distance="d", max_distance=1e3)
    assert_type(by_distance, QuerySet[Place])
    assert_type(await by_distance.values("name", "d"), list[dict[str, Any]])
    found = Place.objects.search("cafe", language="french").filter(name="x")[:10]
    assert_type(found, QuerySet[Place])
    first = await Place.objects.search("cafe").order_by("-score").first()
    if first is not None:
        assert_type(annotations_of(first), Mapping[str, Any])
    assert_type(Place.objects.collation("en", strength=2).order_by("name"), QuerySet[Place])
    assert_type(Place.objects.collation(None), QuerySet[Place])
    Index("name", collation={"locale": "en", "strength": 2})
