"""A declared optimistic-lock counter on the real server (#23 item 2): it is the field odm
counts in (under its alias when it has one), and the compare-and-set across HTTP requests that
the docs show holds for any interleaving of clients: a write succeeds exactly when the version
the client read is the stored one, and each write that changes the document raises it by one."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field

import odm
from odm.contrib.pytest import MonitoredDatabase
from odm.document import Document
from tests.properties import server_property


class VfInvoice(Document):
    number: str
    total: float
    version: int = 0

    class Meta:
        collection = "vf_invoices"
        optimistic_lock = True


class VfTicket(Document):
    title: str
    revision: int = Field(default=0, alias="rev")

    class Meta:
        collection = "vf_tickets"
        optimistic_lock = True
        version_field = "revision"


async def test_a_declared_version_is_the_counter(monitored: MonitoredDatabase) -> None:
    invoice = await VfInvoice(number="F-1", total=10.0).insert()
    assert invoice.version == 0
    first = await VfInvoice.objects.get(id=invoice.id)
    second = await VfInvoice.objects.get(id=invoice.id)
    first.total = 11.0
    monitored.log.clear()
    await first.save()
    (update,) = monitored.log.named("update")
    assert update["updates"][0]["q"] == {"_id": invoice.id, "version": 0}
    assert first.version == 1
    second.total = 12.0
    with pytest.raises(odm.StaleDocument, match="VfInvoice"):
        await second.save()
    stored = await monitored.database.vf_invoices.find_one({})
    assert (stored["total"], stored["version"]) == (11.0, 1)


async def test_a_declared_version_counts_under_its_alias(monitored: MonitoredDatabase) -> None:
    ticket = await VfTicket(title="a").insert()
    assert (await monitored.database.vf_tickets.find_one({}))["rev"] == 0
    ticket.title = "b"
    monitored.log.clear()
    await ticket.save()
    (update,) = monitored.log.named("update")
    assert update["updates"][0]["q"] == {"_id": ticket.id, "rev": 0}
    assert ticket.revision == 1
    # The queryset's compare-and-set filters on the field by name and raises it as well.
    assert await VfTicket.objects.filter(id=ticket.id, revision=1).update(title="c") == 1
    assert await VfTicket.objects.filter(id=ticket.id, revision=1).update(title="d") == 0
    stored = await monitored.database.vf_tickets.find_one({})
    assert (stored["title"], stored["rev"]) == ("c", 2) and "revision" not in stored


async def put_by_instance(invoice_id: Any, seen: int, total: float) -> bool:
    """The docs' PUT by instance: load, compare, change, save."""
    current = await VfInvoice.objects.get(id=invoice_id)
    if current.version != seen:
        return False
    current.total = total
    await current.save()
    return True


async def put_by_queryset(invoice_id: Any, seen: int, total: float) -> bool:
    """The docs' PUT by queryset: one update filtered on the version seen."""
    return await VfInvoice.objects.filter(id=invoice_id, version=seen).update(total=total) == 1


async def test_a_write_between_load_and_save_makes_the_put_stale(
    monitored: MonitoredDatabase,
) -> None:
    invoice = await VfInvoice(number="F-2", total=1.0).insert()
    loaded = await VfInvoice.objects.get(id=invoice.id)      # the PUT's load: version 0, as seen
    assert await put_by_queryset(invoice.id, 0, 2.0)         # another request saves meanwhile
    loaded.total = 3.0
    with pytest.raises(odm.StaleDocument):                   # 409 through the middleware
        await loaded.save()
    stored = await monitored.database.vf_invoices.find_one({})
    assert (stored["total"], stored["version"]) == (2.0, 1)


CLIENTS = 3
STEPS = st.lists(
    st.tuples(
        st.integers(0, CLIENTS - 1),
        st.sampled_from(["get", "put_by_instance", "put_by_queryset"]),
        st.integers(1, 3).map(float),  # few values: PUTs that change nothing happen too
    ),
    min_size=1,
    max_size=12,
)


@server_property(max_examples=30)
@given(steps=STEPS)
async def test_compare_and_set_across_requests(
    monitored: MonitoredDatabase, steps: list[tuple[int, str, float]]
) -> None:
    await VfInvoice.objects.delete()
    invoice = await VfInvoice(number="F-3", total=0.0).insert()
    # Each client starts from the representation of the creation's answer.
    seen = [invoice.model_dump(mode="json")["version"]] * CLIENTS
    version, total = 0, 0.0                                   # the model of the stored state
    for client, action, value in steps:
        if action == "get":
            got = (await VfInvoice.objects.get(id=invoice.id)).model_dump(mode="json")
            assert (got["version"], got["total"]) == (version, total)
            seen[client] = got["version"]
            continue
        put = put_by_instance if action == "put_by_instance" else put_by_queryset
        succeeded = await put(invoice.id, seen[client], value)
        assert succeeded == (seen[client] == version), (client, action, seen, version)
        if succeeded:
            # A save that changes nothing sends nothing, so the version stays; an update()
            # always writes, and raises it.
            if action == "put_by_queryset" or value != total:
                version += 1
            total = value
            seen[client] = version                            # the PUT's answer carries it
    stored = await monitored.database.vf_invoices.find_one({"_id": invoice.id})
    assert (stored["version"], stored["total"]) == (version, total)
