# ruff: noqa: E501  (each wrong line carries its whole expected message)
"""Typing sample for the ``odm.mypy`` plugin, checked in tests/unit/test_mypy_plugin.py.

Never run, only type-checked. ``ok()`` must pass; every line of ``bad()`` must give the error
its comment names (and only those lines may give errors).
"""

from __future__ import annotations

from datetime import datetime

from odm import Circle, Document, Embedded, F, Near, Point, QuerySet, Reference


class LkAddress(Embedded):
    city: str


class LkCustomer(Document):
    name: str
    age: int = 0
    tags: list[str] = []
    address: LkAddress | None = None
    joined: datetime | None = None


class LkOrder(Document):
    customer: Reference[LkCustomer]
    total: float
    referrer: Reference[LkCustomer] | None = None


class LkShopperQuerySet(QuerySet["LkShopper"]):
    def adults(self) -> LkShopperQuerySet:
        return self.filter(age__gte=18)


class LkShopper(Document):
    age: int = 0

    objects = LkShopperQuerySet.as_manager()


class LkAnimal(Document):
    name: str

    class Meta:
        polymorphic = True


class LkCat(LkAnimal):
    folded_ears: bool = False


class LkPlace(Document):
    loc: Point


async def ok() -> None:
    ann = LkCustomer(name="Ann", address=LkAddress(city="Oslo"))
    LkOrder(customer=ann, total=1.0, referrer=ann)  # an optional reference takes a document
    LkOrder(customer=ann, total=1.0, referrer=Reference(ann.id, ann))
    LkOrder(customer=ann, total=1.0, referrer=None)
    await LkCustomer.objects.filter(age__gte=18, name="Ann", address__city="Oslo")
    await LkCustomer.objects.filter(tags__contains="x", tags="vip", name__icontains="a")
    await LkCustomer.objects.exclude(age__in=[1, 2]).order_by("-age", "name").only("name")
    await LkOrder.objects.select_related("customer").filter(customer__age__gte=18, total__lt=3)
    await LkCustomer.objects.filter(pk="5f0c1e7a9d3e2a1b2c3d4e5f").values("name", "address__city")
    await LkCustomer.objects.filter(age=F("age")).update(age=F("age") + 1, name="Bob")
    await LkCustomer.objects.get(joined__gte=datetime.now(), age__gt=1.5 if False else 2)
    await LkCustomer.objects.defer("tags").values_list("name", flat=True)
    await LkShopper.objects.adults().filter(age__lt=99)
    await LkAnimal.objects.filter(folded_ears=True).order_by("folded_ears")  # a subclass's field
    await LkPlace.objects.filter(loc__near=Near(Point(1, 2)), loc__within=Circle(Point(1, 2), 5))


async def bad() -> None:
    LkCustomer.objects.filter(agee=3)  # error: Unknown field "agee" for LkCustomer in filter(); valid fields: address, age, id, joined, name, pk, tags
    LkCustomer.objects.exclude(age__gtee=3)  # error: Unknown lookup "gtee" on field "age" of LkCustomer in exclude(); valid lookups: all, contains,
    LkCustomer.objects.filter(age="x")  # error: Value of type "str" cannot match field "age" of LkCustomer (int) in filter()
    LkCustomer.objects.filter(name__ne=3)  # error: Value of type "int" cannot match field "name__ne" of LkCustomer (str) in filter()
    LkCustomer.objects.order_by("-nmae")  # error: Unknown field "nmae" for LkCustomer in order_by()
    LkCustomer.objects.filter(address__town="x")  # error: Unknown field "town" for LkAddress in filter(); valid fields: city
    LkOrder.objects.filter(customer__agee=1)  # error: Unknown field "agee" for LkCustomer in filter()
    await LkCustomer.objects.get(nmae="x")  # error: Unknown field "nmae" for LkCustomer in get()
    await LkCustomer.objects.update(nmae="x")  # error: Unknown field "nmae" for LkCustomer in update()
    LkCustomer.objects.values("bogus")  # error: Unknown field "bogus" for LkCustomer in values()
    LkCustomer.objects.values_list("bogus", flat=True)  # error: Unknown field "bogus" for LkCustomer in values_list()
    LkCustomer.objects.only("nmae")  # error: Unknown field "nmae" for LkCustomer in only()
    LkCustomer.objects.defer("nmae")  # error: Unknown field "nmae" for LkCustomer in defer()
    LkOrder.objects.select_related("custome")  # error: Unknown field "custome" for LkOrder in select_related(); valid fields: customer, id, pk, referrer, total
    LkCat.objects.filter(name__gtee="a")  # error: Unknown lookup "gtee" on field "name" of LkCat in filter()
    LkPlace.objects.filter(loc__nearr=Point(1, 2))  # error: Unknown lookup "nearr" on field "loc" of LkPlace in filter()
    LkShopper.objects.adults().filter(agee=1)  # error: Unknown field "agee" for LkShopper in filter(); valid fields: age, id, pk
