"""Models and seed data for the queryset integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

import odm
from odm import Document, Embedded, Indexed, QuerySet, Reference


class QsAddress(Embedded):
    street: str = ""
    city: str
    zip: str | None = None


class QsItem(Embedded):
    sku: str
    price: float
    qty: int = 1


class QsCustomerQuerySet(QuerySet["QsCustomer"]):
    def adults(self) -> QsCustomerQuerySet:
        return self.filter(age__gte=18)

    def named(self, prefix: str) -> QsCustomerQuerySet:
        return self.filter(name__startswith=prefix)


class QsCustomer(Document):
    email: Annotated[str, Indexed(unique=True)]
    name: str
    age: int = 0
    score: float = 0.0
    tags: list[str] = []
    scores: list[int] = []
    address: QsAddress | None = None
    items: list[QsItem] = []
    meta: dict[str, Any] = {}
    nick: str | None = None
    created: datetime = Field(default_factory=odm.utcnow)

    objects = QsCustomerQuerySet.as_manager()

    class Meta:
        collection = "qs_customers"
        ordering = ["name"]


class QsOrder(Document):
    customer: Reference[QsCustomer]
    total: float
    paid: float = 0.0
    status: str = "new"
    watchers: list[Reference[QsCustomer]] = []

    class Meta:
        collection = "qs_orders"


class QsAnimal(Document):
    name: str

    class Meta:
        collection = "qs_animals"
        polymorphic = True


class QsCat(QsAnimal):
    lives: int = 9


class QsDog(QsAnimal):
    good: bool = True


PEOPLE: list[dict[str, Any]] = [
    {"email": "ann@x.io", "name": "Ann", "age": 34, "score": 7.5, "tags": ["vip", "paris"],
     "scores": [80, 95], "address": {"street": "1 rue A", "city": "Paris", "zip": "75001"},
     "items": [{"sku": "A1", "price": 10.0, "qty": 2}, {"sku": "B2", "price": 99.0}],
     "meta": {"source": "web"}, "nick": "annie"},
    {"email": "bob@x.io", "name": "Bob", "age": 17, "score": 3.0, "tags": ["young"],
     "scores": [50], "address": {"city": "Lyon"},
     "items": [{"sku": "A1", "price": 12.0}], "meta": {"source": "shop"}},
    {"email": "cid@x.io", "name": "Cid.Jr", "age": 52, "score": 9.0, "tags": [],
     "scores": [], "address": {"city": "paris"}, "items": []},
    {"email": "dee@x.io", "name": "dee", "age": 25, "tags": ["vip", "spam", "a.b"],
     "scores": [85, 88, 91], "address": None,
     "items": [{"sku": "C3", "price": 5.5, "qty": 10}], "nick": "D(ee)*"},
]


async def seed_people() -> dict[str, QsCustomer]:
    docs = [QsCustomer(**p) for p in PEOPLE]
    await QsCustomer.objects.bulk_create(docs)
    return {d.name: d for d in docs}


def walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Yield every (key, value) of every dict inside ``value``."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, sub in item.items():
                yield key, sub
                stack.append(sub)
        elif isinstance(item, list | tuple):
            stack.extend(item)
