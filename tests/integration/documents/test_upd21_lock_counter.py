"""The optimistic lock's counter written by hand, through every entry point that writes.

``update()`` raises the version itself, so a queryset update naming the counter is refused
before anything is sent (it was PyMongo's raw ``WriteError``, code 40: odm's ``$inc`` beside
the user's write of the path; ``F("version") + 5`` even ran, as ``+ 1``). A write by instance
(``save()``, ``delete()``, the block's flush) checks the version the object was loaded with:
an object whose version was set to another one, by hand or from a client's request body, is
refused as stale before anything is sent (it was ignored, and the write went over whatever
that client never saw). An insert owns the version, whatever the object holds (documented).
After each, the object and the stored document agree.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import Field

import odm
from odm import F, Greatest, QueryError, StaleDocument
from odm.contrib.pytest import MonitoredDatabase
from odm.document import Document

pytestmark = pytest.mark.odm_drivers("pymongo")  # the checks are odm's, not the driver's


class Upd21Invoice(Document):
    number: str
    total: float = 0.0

    class Meta:
        collection = "upd21_invoices"
        optimistic_lock = True


class Upd21Ticket(Document):
    title: str
    revision: int = Field(default=0, alias="rev")

    class Meta:
        collection = "upd21_tickets"
        optimistic_lock = True
        version_field = "revision"


class Upd21Animal(Document):
    name: str

    class Meta:
        collection = "upd21_animals"
        optimistic_lock = True
        polymorphic = True


class Upd21Cat(Upd21Animal):
    lives: int = 9


async def _stored(monitored: MonitoredDatabase, model: type[Document]) -> list[dict[str, Any]]:
    found = monitored.database[model._meta.collection].find({}).sort("_id", 1)
    return [doc async for doc in found]


async def _agrees(monitored: MonitoredDatabase, document: Document) -> None:
    """The object says what the database holds (the rule)."""
    raw = await monitored.database[document._meta.collection].find_one({"_id": document.id})
    assert raw == document.to_bson()


# -- a queryset's update() ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "values", "named"),
    [
        (Upd21Invoice, {"version": 0}, "Upd21Invoice.version"),
        (Upd21Invoice, {"version": F("version") + 5}, "Upd21Invoice.version"),
        (Upd21Invoice, {"total": 3.0, "version": 7}, "Upd21Invoice.version"),
        (Upd21Invoice, {"version": Greatest(F("version"), 9)}, "Upd21Invoice.version"),
        (Upd21Ticket, {"revision": 3}, "Upd21Ticket.revision (stored as 'rev')"),
        (Upd21Cat, {"version": 1}, "Upd21Cat.version"),
        (Upd21Animal, {"version": 1}, "Upd21Animal.version"),
    ],
    ids=["plain", "f-plus", "beside-another", "greatest", "renamed-alias", "subclass", "root"],
)
async def test_update_naming_the_counter_is_refused_before_sending(
    monitored: MonitoredDatabase, model: type[Document], values: dict[str, Any], named: str
) -> None:
    made = {Upd21Invoice: {"number": "a"}, Upd21Ticket: {"title": "a"}}.get(model, {"name": "a"})
    document = await (Upd21Cat if model is Upd21Animal else model)(**made).insert()
    before = await _stored(monitored, model)
    monitored.log.clear()
    with pytest.raises(QueryError, match=rf"^update\(\) cannot write {re.escape(named)}: it is "):
        await model.objects.filter(id=document.id).update(**values)
    assert monitored.log.names() == []
    assert await _stored(monitored, model) == before
    await _agrees(monitored, document)


async def test_update_of_the_counter_in_a_block_is_refused_and_the_block_goes_on(
    monitored: MonitoredDatabase,
) -> None:
    invoice = await Upd21Invoice(number="a").insert()
    async with odm.transaction():
        held = await Upd21Invoice.objects.get(id=invoice.id)
        held.total = 5.0
        with pytest.raises(QueryError, match=r"Upd21Invoice\.version"):
            await Upd21Invoice.objects.filter(number="a").update(version=7)
    (stored,) = await _stored(monitored, Upd21Invoice)
    assert (stored["total"], stored["version"]) == (5.0, 1)
    await _agrees(monitored, held)


# -- writes by instance ---------------------------------------------------------------------


async def _set_by_attribute(document: Any, name: str, value: int) -> None:
    setattr(document, name, value)


async def _set_in_dict(document: Any, name: str, value: int) -> None:
    document.__dict__[name] = value


async def _set_by_copy(document: Any, name: str, value: int) -> Any:
    return document.model_copy(update={name: value})


@pytest.mark.parametrize(
    ("model", "write", "how"),
    [
        (Upd21Invoice, "save", "attribute"),
        (Upd21Invoice, "save", "dict"),
        (Upd21Invoice, "save", "copy"),
        (Upd21Invoice, "delete", "attribute"),
        (Upd21Ticket, "save", "attribute"),
        (Upd21Ticket, "delete", "dict"),
        (Upd21Cat, "save", "attribute"),
    ],
)
async def test_a_write_by_instance_of_a_version_set_by_hand_is_stale_before_sending(
    monitored: MonitoredDatabase, model: type[Any], write: str, how: str
) -> None:
    made = {Upd21Invoice: {"number": "a"}, Upd21Ticket: {"title": "a"}}.get(model, {"name": "a"})
    name = model._meta.version_field
    await model(**made).insert()
    document = await model.objects.get()
    setting = {"attribute": _set_by_attribute, "dict": _set_in_dict, "copy": _set_by_copy}[how]
    document = await setting(document, name, 99) or document
    before = await _stored(monitored, model)
    monitored.log.clear()
    with pytest.raises(StaleDocument, match=rf"its {name} is 99, but it was loaded at version 0"):
        await getattr(document, write)()
    assert "update" not in monitored.log.names() and "delete" not in monitored.log.names()
    assert await _stored(monitored, model) == before
    await document.refresh()  # as the message says: the version stored, and a save works
    await _agrees(monitored, document)
    await document.save()
    await _agrees(monitored, document)


async def test_a_client_version_that_is_the_loaded_one_saves_and_counts(
    monitored: MonitoredDatabase,
) -> None:
    """The compare-and-set by instance, with the client's version set on the object."""
    await Upd21Invoice(number="a").insert()
    first = await Upd21Invoice.objects.get()
    body = {"version": 0, "total": 12.0}          # a client that read version 0
    for key, value in body.items():
        setattr(first, key, value)
    await first.save()
    assert first.version == 1
    await _agrees(monitored, first)
    late = await Upd21Invoice.objects.get()
    for key, value in body.items():               # a client that also read version 0: late
        setattr(late, key, value)
    with pytest.raises(StaleDocument, match="its version is 0, but it was loaded at version 1"):
        await late.save()
    (stored,) = await _stored(monitored, Upd21Invoice)
    assert (stored["total"], stored["version"]) == (12.0, 1)


async def test_update_or_create_with_a_version_is_a_compare_and_set(
    monitored: MonitoredDatabase,
) -> None:
    await Upd21Invoice(number="a").insert()
    before = await _stored(monitored, Upd21Invoice)
    with pytest.raises(StaleDocument, match="its version is 42, but it was loaded at version 0"):
        await Upd21Invoice.objects.update_or_create({"version": 42, "total": 9.0}, number="a")
    assert await _stored(monitored, Upd21Invoice) == before
    document, created = await Upd21Invoice.objects.update_or_create(
        {"version": 0, "total": 9.0}, number="a"
    )
    assert not created and (document.total, document.version) == (9.0, 1)
    await _agrees(monitored, document)
    # A new document: the insert owns the version, whatever the defaults hold.
    document, created = await Upd21Invoice.objects.update_or_create({"version": 42}, number="b")
    assert created and document.version == 0
    await _agrees(monitored, document)


async def test_a_block_whose_object_has_a_version_set_by_hand_does_not_commit(
    monitored: MonitoredDatabase,
) -> None:
    await Upd21Invoice(number="a").insert()
    before = await _stored(monitored, Upd21Invoice)
    with pytest.raises(StaleDocument, match="Upd21Invoice"):
        async with odm.transaction():
            held = await Upd21Invoice.objects.get()
            held.version = 99
            held.total = 3.0
    assert await _stored(monitored, Upd21Invoice) == before


# -- inserts own the version (documented: docs/documents.md, "An insert sets the version") --


async def test_every_insert_ignores_a_version_the_object_holds(
    monitored: MonitoredDatabase,
) -> None:
    inserted = await Upd21Invoice(number="a", version=9).insert()
    (made, _) = await Upd21Invoice.objects.get_or_create(defaults={"version": 9}, number="b")
    (bulk,) = await Upd21Invoice.objects.bulk_create([Upd21Invoice(number="c", version=12)])
    for document in (inserted, made, bulk):
        assert document.version == 0
        await _agrees(monitored, document)
