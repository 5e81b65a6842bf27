"""Documents whose id is not an ObjectId (``id: str``, ``id: int``) have their pages, links that
name them whatever their characters, and a form that asks for the id of a new one. Was: every
page of theirs a 404 ("is not a document id"), an id with ``/``, ``?`` or ``#`` a link to
another page, and a new one refused ("_id: Field required", with no input to give it)."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from yarl import URL

from odm import Document, Reference
from odm.contrib.admin import ModelAdmin
from odm.drivers import DriverName
from tests.integration.admin.admin_refusals_app import serving_app
from tests.integration.admin.conftest import Client, csrf
from tests.integration.admin.support import ADMIN_HEADER
from tests.integration.admin.test_admin_bad_input import field_errors


class ItPage(Document):
    """A document named by a slug."""

    id: str
    title: str = ""

    class Meta:
        collection = "it_pages"


class ItSeat(Document):
    """A document numbered by an int, referencing a page."""

    id: int
    page: Reference[ItPage] | None = None

    class Meta:
        collection = "it_seats"


@pytest.fixture
async def pages(aiohttp_client: Any, odm_uri: str, odm_driver: DriverName) -> Client:
    """A client of the pages' and seats' admin, allowed in."""
    admins = [ModelAdmin(ItPage, name="page"), ModelAdmin(ItSeat, name="seat")]
    app = serving_app(odm_uri, odm_driver, [ItPage, ItSeat], admins)
    client: Client = await aiohttp_client(app, headers={ADMIN_HEADER: "yes"})
    return client


HOSTILE = "a/b?c#d e"
"""An id with the characters that would make a link another page."""


async def test_a_document_of_any_id_type_has_its_pages(pages: Client) -> None:
    await ItPage(id=HOSTILE, title="hostile").insert()
    await ItSeat(id=7, page=await ItPage(id="home", title="Home").insert()).insert()
    listed = await (await pages.get("/admin/page/")).text()
    links = set(re.findall(r'<td><a href="(/admin/page/[^"]*)"', listed))
    assert links == {"/admin/page/home/", "/admin/page/a%2Fb%3Fc%23d%20e/"}, links
    for path in (*links, "/admin/seat/7/"):
        for page in ("", "edit/", "delete/"):
            response = await pages.get(URL(path + page, encoded=True))
            assert response.status == 200, (path, page)
    detail = await (await pages.get("/admin/seat/7/")).text()
    assert '<a class="reference" href="/admin/page/home/">Home (home)</a>' in detail, detail
    for path, wanted in [
        ("/admin/seat/x/", "'x' is not an id of ItSeat"),
        ("/admin/page/no/", ""),
    ]:
        response = await pages.get(path)
        assert response.status == 404, path
        assert wanted in html.unescape(await response.text()), path


async def test_a_new_document_is_given_its_id(pages: Client) -> None:
    token = await csrf(pages)
    form = await (await pages.get("/admin/page/add/")).text()
    assert '<input type="text" id="f-id" name="id" value="">' in form
    for missing in ({}, {"id": ""}):
        response = await pages.post("/admin/page/add/", data={"csrf_token": token, **missing})
        assert response.status == 400, missing
        assert field_errors(await response.text(), "id") == ["Field required"], missing
    response = await pages.post("/admin/page/add/", data={"csrf_token": token, "id": HOSTILE})
    assert response.status == 200
    assert response.url.raw_path == "/admin/page/a%2Fb%3Fc%23d%20e/"
    response = await pages.post("/admin/seat/add/", data={"csrf_token": token, "id": "12"})
    assert response.status == 200 and response.url.path == "/admin/seat/12/"
    assert [p.id for p in await ItPage.objects.all()] == [HOSTILE]
    assert [s.id for s in await ItSeat.objects.all()] == [12]
    # Given once: an edit shows it, and refuses it as any read-only field.
    edit = await (await pages.get(URL("/admin/seat/12/edit/"))).text()
    assert '<span class="readonly" id="f-id">12</span>' in edit and 'name="id"' not in edit
    response = await pages.post("/admin/seat/12/edit/", data={"csrf_token": token, "id": "13"})
    assert response.status == 400
    assert [s.id for s in await ItSeat.objects.all()] == [12]
