"""Typing sample for constructors, checked by mypy --strict and pyright WITHOUT a plugin in
tests/unit/test_typed_constructors.py. Never run, only type-checked."""

from __future__ import annotations

from typing import assert_type

import bson

from odm import Document, Embedded, Reference


class TcAddress(Embedded):
    city: str


class TcCustomer(Document):
    name: str
    age: int = 0
    address: TcAddress | None = None


class TcOrder(Document):
    customer: Reference[TcCustomer]
    total: float
    referrer: Reference[TcCustomer] | None = None
    version: int = 0

    class Meta:
        optimistic_lock = True


def sample(oid: bson.ObjectId) -> None:
    ann = TcCustomer(name="Ann", age=31, address=TcAddress(city="Oslo"))
    TcCustomer(id=oid, name="Bob")
    order = TcOrder(customer=ann, total=9.5)        # a document for a Reference field
    TcOrder(customer=Reference(oid), total=1.0)     # or a Reference
    # An optional reference is a union, not the descriptor: a Reference built from the document
    # (the mypy plugin also takes the document itself).
    TcOrder(customer=ann, total=1.0, referrer=Reference(ann.id, ann))
    order.customer = ann
    assert_type(order.customer, Reference[TcCustomer])
    assert_type(order.version, int)
    assert_type(ann.age, int)
