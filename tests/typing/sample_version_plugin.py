# ruff: noqa: E501  (each wrong line carries its whole expected message)
"""Typing sample for an undeclared optimistic-lock counter (#23 item 2), checked in
tests/unit/test_typed_version.py. Never run, only type-checked.

With ``odm.mypy``, ``added()`` must pass (the plugin adds the field as the metaclass does) and
every line of ``bad()`` must give the error its comment names (and only those lines). Without a
plugin every line marked "needs the plugin" is an error: the field is not declared.
"""

from __future__ import annotations

from typing import assert_type

from odm import Document


class PvInvoice(Document):
    total: float

    class Meta:
        optimistic_lock = True


class PvCredit(PvInvoice):
    reason: str = ""


class PvLocked(Document):
    class Meta:
        abstract = True
        optimistic_lock = True
        version_field = "revision"


class PvTicket(PvLocked):
    title: str


class PvPlain(Document):
    total: float


async def added() -> None:
    invoice = PvInvoice(total=1.0)
    assert_type(invoice.version, int)  # needs the plugin
    assert_type(PvCredit(total=1.0).version, int)  # needs the plugin
    assert_type(PvTicket(title="t").revision, int)  # needs the plugin
    await PvInvoice.objects.filter(version=2).update(total=3.0)
    await PvTicket.objects.order_by("-revision")


def bad() -> None:
    _ = PvPlain(total=1.0).version  # error: "PvPlain" has no attribute "version"
    _ = PvTicket(title="t").version  # error: "PvTicket" has no attribute "version"
    PvInvoice.objects.filter(version="2")  # error: Value of type "str" cannot match field "version" of PvInvoice (int) in filter()
    PvTicket.objects.order_by("revison")  # error: Unknown field "revison" for PvTicket in order_by(); valid fields:
