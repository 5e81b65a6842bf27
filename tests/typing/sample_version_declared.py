"""Typing sample for a declared optimistic-lock counter (#23 item 2), checked in
tests/unit/test_typed_version.py by mypy --strict and pyright without a plugin, and by mypy with
``odm.mypy``: all three must accept it. Never run, only type-checked."""

from __future__ import annotations

from typing import Annotated, assert_type

from pydantic import Field

from odm import Document


class DvOrder(Document):
    total: float
    version: int = 0

    class Meta:
        optimistic_lock = True


class DvRefund(DvOrder):
    reason: str = ""


class DvTicket(Document):
    title: str
    revision: Annotated[int, Field(ge=0)] = 0

    class Meta:
        optimistic_lock = True
        version_field = "revision"


async def declared() -> None:
    order = DvOrder(total=9.5)
    assert_type(order.version, int)
    assert_type(DvRefund(total=1.0).version, int)
    assert_type(DvTicket(title="t").revision, int)
    seen: int = order.version
    await DvOrder.objects.filter(id=order.id, version=seen).update(total=12.0)
