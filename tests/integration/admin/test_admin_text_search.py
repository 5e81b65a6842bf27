"""The list's search box on a model with a text index: ``Model.objects.search()``, not substrings.

Words match by their stems ("running" finds "run"), a phrase's words each match, the search
string stays a string (operators in it are words), and the keyset pages still hold. A model
given ``search_fields`` keeps the substring search; ``text_search=True`` on a model without a
text index is refused at set-up, naming the model.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urljoin

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

import odm
from odm import Document, Index
from odm.contrib.admin import ModelAdmin, setup_admin
from odm.contrib.aiohttp import odm_errors_middleware, setup_odm
from odm.drivers import DriverName

Client = TestClient[web.Request, web.Application]
HEADER = "X-Test-Admin"


class AdminNote(Document):
    """A model with a text index over two fields."""

    title: str
    body: str = ""

    class Meta:
        collection = "admin_notes"
        indexes = [Index(text=["title", "body"])]


def _app(uri: str, name: str, driver: DriverName, admin: ModelAdmin) -> web.Application:
    app = web.Application(middlewares=[odm_errors_middleware])
    setup_odm(app, uri, db=name, driver=driver, models=[AdminNote], timeout=30.0)

    async def database(app: web.Application) -> AsyncIterator[None]:
        await odm.ensure_indexes()
        yield
        await odm.get_client().drop_database(name)

    app.cleanup_ctx.append(database)
    setup_admin(app, [admin], authorize=lambda request: request.headers.get(HEADER) == "yes")
    return app


async def _client(aiohttp_client: Any, uri: str, driver: DriverName, admin: ModelAdmin) -> Client:
    name = f"odm_admin_text_{uuid.uuid4().hex[:12]}"
    client: Client = await aiohttp_client(_app(uri, name, driver, admin), headers={HEADER: "yes"})
    return client


def titles(text: str) -> list[str]:
    """The titles shown on a list page, in order."""
    found = re.findall(r'<tr class="row">.*?</td>\s*<td>([^<]*)</td>', text, re.S)
    return [html.unescape(title) for title in found]


NOTES = [
    ("run every morning", "legs"),
    ("a quiet evening", "she was running late"),
    ("runner's diary", ""),
    ("tea", "green, no sugar"),
    ("$ne operators", "are words here"),
]


async def seed() -> None:
    await AdminNote.objects.bulk_create([AdminNote(title=t, body=b) for t, b in NOTES])


async def test_the_search_box_uses_the_text_index(
    aiohttp_client: Any, odm_uri: str, odm_driver: DriverName
) -> None:
    admin = ModelAdmin(AdminNote, name="note", list_display=("id", "title"))
    assert admin.uses_text_index() and admin.searched() == ("title", "body")
    client = await _client(aiohttp_client, odm_uri, odm_driver, admin)
    await seed()
    page = await (await client.get("/admin/note/?q=running")).text()
    # Stems: "running" finds "run" and "running", in the title or the body; not "runner's".
    assert sorted(titles(page)) == ["a quiet evening", "run every morning"]
    page = await (await client.get("/admin/note/?q=tea sugar")).text()
    assert titles(page) == ["tea"]
    page = await (await client.get('/admin/note/?q={"$ne": null}')).text()
    # Words ("ne", "null"), not an operator that would match every note.
    assert titles(page) == ["$ne operators"]
    assert 'placeholder="Search title, body"' in page


async def test_search_fields_keep_the_substring_search(
    aiohttp_client: Any, odm_uri: str, odm_driver: DriverName
) -> None:
    admin = ModelAdmin(
        AdminNote, name="note", list_display=("id", "title"), search_fields=("title",)
    )
    assert not admin.uses_text_index()
    client = await _client(aiohttp_client, odm_uri, odm_driver, admin)
    await seed()
    page = await (await client.get("/admin/note/?q=runn")).text()
    assert titles(page) == ["runner's diary"]  # a substring of the title only


async def test_text_search_pages_by_keyset(
    aiohttp_client: Any, odm_uri: str, odm_driver: DriverName
) -> None:
    admin = ModelAdmin(AdminNote, name="note", list_display=("id", "title"), per_page=4)
    client = await _client(aiohttp_client, odm_uri, odm_driver, admin)
    await AdminNote.objects.bulk_create(
        [AdminNote(title=f"walk {i:02d}", body="walking") for i in range(10)]
        + [AdminNote(title=f"swim {i:02d}") for i in range(5)]
    )
    seen: list[str] = []
    path: str | None = "/admin/note/?q=walk"
    while path is not None:
        page = await (await client.get(path)).text()
        seen += titles(page)
        found = re.search(r'id="next" href="([^"]+)"', page)
        path = urljoin("/admin/note/", html.unescape(found.group(1))) if found else None
    assert sorted(seen) == [f"walk {i:02d}" for i in range(10)]
    assert len(seen) == len(set(seen))


def test_text_search_without_a_text_index_is_refused() -> None:
    class AdminPlain(Document):
        title: str

        class Meta:
            collection = "admin_plain"

    with pytest.raises(ValueError, match="AdminPlain declares no text index"):
        ModelAdmin(AdminPlain, text_search=True)
    odm.registry.unregister(AdminPlain)
