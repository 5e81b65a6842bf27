"""What an attacker's requests found in the admin, and what they get now: a body that is not a
readable form is a 400 (was a 500), a datetime past year 9999 in UTC on an edit is refused at
its input (was a 500), a value BSON cannot store is shown at the input holding it (the
executor may point at the wrong field), a frozen field is read-only on an edit (every edit of
its model was refused as JSON), a reference in an embedded model or a row must exist (any id
was written)."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import urlencode

import pytest
from pydantic import Field

from odm import Document, Embedded, Reference
from odm.contrib.admin import ModelAdmin
from odm.drivers import DriverName
from tests.integration.admin.admin_refusals_app import serving_app
from tests.integration.admin.conftest import Client, csrf
from tests.integration.admin.support import AdminAuthor, AdminBook, AdminSetting
from tests.integration.admin.test_admin_bad_input import field_errors

FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("content_type", "tail"),
    [
        (FORM, b"&title=\xed\xa0\x80"),  # a lone surrogate, as UTF-8 cannot hold it
        (FORM, b"&title=\xff"),
        (f"{FORM}; charset=klingon", b""),
        ("multipart/form-data; boundary=zz", b"not a multipart body"),
    ],
    ids=["surrogate", "not-utf8", "unknown-charset", "bad-multipart"],
)
async def test_a_body_that_is_not_a_readable_form_is_a_400(
    admin: Client, content_type: str, tail: bytes
) -> None:
    book = await AdminBook(title="B", pages=1).insert()
    token = await csrf(admin)
    body = urlencode({"csrf_token": token, "title": "T", "pages": "2", "_version": "0"}).encode()
    response = await admin.post(
        f"/admin/book/{book.id}/edit/",
        data=body + tail,
        headers={"Content-Type": content_type},
        allow_redirects=False,
    )
    assert response.status == 400
    assert "cannot be read" in await response.text()
    assert [(b.title, b.pages, b.version) for b in await AdminBook.objects.all()] == [("B", 1, 0)]


async def test_a_datetime_past_year_9999_in_utc_is_refused_at_its_input(admin: Client) -> None:
    book = await AdminBook(title="B", pages=1).insert()
    token = await csrf(admin)
    form = {"csrf_token": token, "title": "B", "pages": "1", "_version": "0"}
    late = "9999-12-31T23:59:59-14:00"  # 10000-01-01 in UTC
    for path in (f"/admin/book/{book.id}/edit/", "/admin/book/add/"):
        response = await admin.post(path, data={**form, "published": late})
        assert response.status == 400, path
        text = await response.text()
        shown = field_errors(text, "published")
        assert len(shown) == 1 and "date value out of range" in shown[0], shown
    assert [(b.published, b.version) for b in await AdminBook.objects.all()] == [(None, 0)]


async def test_a_value_bson_cannot_store_is_shown_where_it_is_typed(admin: Client) -> None:
    setting = await AdminSetting(name="s", data={"a": 1}).insert()
    token = await csrf(admin)
    # A row's integer on a new book: the executor named an earlier field that it could not
    # encode alone (the binding, an enum).
    book = {"csrf_token": token, "title": "B", "pages": "1", "lines.0.sku": "tea"}
    response = await admin.post("/admin/book/add/", data={**book, "lines.0.qty": str(2**70)})
    assert response.status == 400
    text = await response.text()
    assert "8-byte ints" in " ".join(field_errors(text, "lines.0.qty")), text
    assert field_errors(text, "binding") == []
    # The second line of a list of numbers, on an edit.
    ports = {"csrf_token": token, "name": "s", "data": '{"a": 1}', "ports": f"80\n{2**70}"}
    response = await admin.post(f"/admin/setting/{setting.id}/edit/", data=ports)
    assert response.status == 400
    shown = field_errors(await response.text(), "ports")
    assert len(shown) == 1 and shown[0].startswith("item 2: ") and "8-byte ints" in shown[0]
    assert await AdminBook.objects.count() == 0
    assert [(s.data, s.ports) for s in await AdminSetting.objects.all()] == [({"a": 1}, [])]


class S17Slot(Embedded):
    """An embedded model holding a reference."""

    who: Reference[AdminAuthor] | None = None


class S17Ticket(Document):
    """A document with a frozen field and references inside embedded models."""

    name: str = ""
    made_by: str = Field(default="system", frozen=True)
    slot: S17Slot | None = None
    slots: list[S17Slot] = []

    class Meta:
        collection = "s17_tickets"


@pytest.fixture
async def tickets(aiohttp_client: Any, odm_uri: str, odm_driver: DriverName) -> Client:
    """A client of the admin of tickets and authors, allowed in."""
    admins = [ModelAdmin(S17Ticket, name="ticket"), ModelAdmin(AdminAuthor, name="author")]
    app = serving_app(odm_uri, odm_driver, [S17Ticket, AdminAuthor], admins)
    client: Client = await aiohttp_client(app, headers={"X-Test-Admin": "yes"})
    return client


async def test_a_frozen_field_is_read_only_on_an_edit(tickets: Client) -> None:
    ticket = await S17Ticket(name="a", made_by="ann").insert()
    token = await csrf(tickets)
    path = f"/admin/ticket/{ticket.id}/edit/"
    page = await (await tickets.get(path)).text()
    assert re.search(r'<span class="readonly" id="f-made_by">ann</span>', page)
    assert 'name="made_by"' not in page
    response = await tickets.post(path, data={"csrf_token": token, "name": "b", "made_by": "x"})
    assert response.status == 400
    assert "'made_by': the field is read-only" in html.unescape(await response.text())
    response = await tickets.post(path, data={"csrf_token": token, "name": "b"})
    assert response.status == 200 and response.url.path == f"/admin/ticket/{ticket.id}/"
    assert [(t.name, t.made_by) for t in await S17Ticket.objects.all()] == [("b", "ann")]
    # A new document's is written: frozen means unchanged once made.
    response = await tickets.post(
        "/admin/ticket/add/", data={"csrf_token": token, "name": "c", "made_by": "bob"}
    )
    assert response.status == 200
    assert await S17Ticket.objects.filter(name="c").values_list("made_by", flat=True) == ["bob"]


@pytest.mark.parametrize("where", ["slot.who", "slots.0.who"])
async def test_a_reference_in_an_embedded_model_must_name_a_document_of_its_target(
    tickets: Client, where: str
) -> None:
    ticket = await S17Ticket(name="a").insert()
    ann = await AdminAuthor(name="Ann").insert()
    token = await csrf(tickets)
    for path in ("/admin/ticket/add/", f"/admin/ticket/{ticket.id}/edit/"):
        for id in ("zzz", str(ticket.id)):  # not an id; a ticket's, not an author's
            response = await tickets.post(path, data={"csrf_token": token, "name": "b", where: id})
            assert response.status == 400, (path, id)
            shown = field_errors(await response.text(), where)
            assert f"no AdminAuthor has the id {id!r}" in shown, shown
    assert [(t.name, t.slot, t.slots) for t in await S17Ticket.objects.all()] == [("a", None, [])]
    path = f"/admin/ticket/{ticket.id}/edit/"
    response = await tickets.post(path, data={"csrf_token": token, "name": "b", where: str(ann.id)})
    assert response.status == 200
    saved = await S17Ticket.objects.get(id=ticket.id)
    slot = saved.slot if where == "slot.who" else saved.slots[0]
    assert slot is not None and slot.who is not None and slot.who.id == ann.id
