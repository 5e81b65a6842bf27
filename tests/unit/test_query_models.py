"""Models shared by the query-building unit tests (API.md section 2, own collections)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from odm.document import Document, Embedded
from odm.models.fields import Indexed, Reference, utcnow


class QAddress(Embedded):
    street: str
    city: str
    zip: str | None = None


class QCustomer(Document):
    email: Annotated[str, Indexed(unique=True)]
    name: str = Field(min_length=2)
    age: Annotated[int, Field(ge=0)] = 0
    score: float = 0.0
    active: bool = True
    tags: list[str] = []
    scores: list[int] = []
    address: QAddress | None = None
    addresses: list[QAddress] = []
    meta: dict[str, Any] = {}
    nick: str | None = None
    created: datetime = Field(default_factory=utcnow)

    class Meta:
        collection = "qt_customers"
        ordering = ["-created"]


class QOrder(Document):
    customer: Reference[QCustomer]
    total: float
    paid: float = 0.0
    status: str = "new"
    items: list[dict[str, Any]] = []
    watchers: list[Reference[QCustomer]] = []

    class Meta:
        collection = "qt_orders"
        optimistic_lock = True


class QShipment(Document):
    order: Reference[QOrder]
    carrier: str = ""

    class Meta:
        collection = "qt_shipments"


class Plain(BaseModel):
    """A plain pydantic model (no _meta): paths resolve against it too."""

    title: str
    count: int = 0
    labels: list[str] = []
