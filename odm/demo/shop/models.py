"""The shop's documents. Money is kept in integer cents, which add up exactly."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from odm.document import Document
from odm.models.fields import Field, Indexed, Reference, utcnow
from odm.models.indexes import Index


class Customer(Document):
    """A customer and the balance of their account."""

    email: Annotated[str, Indexed(unique=True)]
    name: str
    balance: int = 0
    created: dt.datetime = Field(default_factory=utcnow)

    class Meta:
        collection = "customers"


class Order(Document):
    """An order, paid from its customer's balance when it was placed."""

    customer: Reference[Customer]
    total: int
    items: list[dict[str, Any]] = []
    status: str = "paid"
    created: dt.datetime = Field(default_factory=utcnow)

    class Meta:
        collection = "orders"
        # GET /customers/{id}/orders: one customer's orders, oldest first.
        indexes = [Index("customer", "created")]


MODELS: list[type[Document]] = [Customer, Order]
"""The documents the app binds to its connection."""
