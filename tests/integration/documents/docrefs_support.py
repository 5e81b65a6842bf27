"""Models whose references name their target as a string (no ``from __future__ import
annotations`` here on purpose): the target is declared further down, or is the class itself."""

from typing import Any

from odm.document import Document
from odm.models.fields import Reference


class StrOrder(Document):
    customer: Reference["StrCustomer"]
    watchers: list[Reference["StrCustomer"]] = []
    total: float = 0

    class Meta:
        collection = "docrefs_str_orders"


class StrCustomer(Document):
    name: str
    age: int = 0

    class Meta:
        collection = "docrefs_str_customers"


class StrNode(Document):
    name: str
    parent: Reference["StrNode"] | None = None

    class Meta:
        collection = "docrefs_str_nodes"


def models() -> dict[str, Any]:
    """The classes, by role, for the shared test bodies."""
    return {"order": StrOrder, "customer": StrCustomer, "node": StrNode}
