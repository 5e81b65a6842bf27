"""A form over aiohttp's limits (more than ``client_max_fields`` fields, or more than
``client_max_size`` bytes) is answered with the admin's own error page, a 413 naming the limit,
and nothing is saved (was: aiohttp's bare text 413)."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from odm.contrib.admin import ModelAdmin
from odm.drivers import DriverName
from tests.integration.admin.admin_refusals_app import serving_app
from tests.integration.admin.conftest import Client, csrf
from tests.integration.admin.support import ADMIN_HEADER, AdminAuthor


@pytest.fixture
async def authors(aiohttp_client: Any, odm_uri: str, odm_driver: DriverName) -> Client:
    """A client of the authors' admin (aiohttp's default limits), allowed in."""
    app = serving_app(odm_uri, odm_driver, [AdminAuthor], [ModelAdmin(AdminAuthor, name="author")])
    client: Client = await aiohttp_client(app, headers={ADMIN_HEADER: "yes"})
    return client


def problem(text: str) -> str:
    """What the admin's error page says."""
    found = re.search(r'<p class="error" id="problem">([^<]*)</p>', text)
    assert found is not None, text[:300]
    return found.group(1)


def multipart(fields: dict[str, str]) -> aiohttp.FormData:
    """``fields`` as a multipart/form-data body."""
    return aiohttp.FormData(list(fields.items()), default_to_multipart=True)


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
async def test_a_form_with_too_many_fields_gets_the_admins_413_page(
    authors: Client, encoding: str
) -> None:
    token = await csrf(authors, "/admin/author/add/")
    fields = {"csrf_token": token, "name": "a", **{f"x{i}": "" for i in range(1000)}}
    body = fields if encoding == "urlencoded" else multipart(fields)
    response = await authors.post("/admin/author/add/", data=body)
    assert response.status == 413
    assert response.content_type == "text/html"
    text = await response.text()
    assert "<header>" in text and "odm admin" in text  # the admin's layout
    assert "more than 1000 fields" in problem(text)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert await AdminAuthor.objects.count() == 0


async def test_a_form_over_the_body_size_gets_the_admins_413_page(authors: Client) -> None:
    token = await csrf(authors, "/admin/author/add/")
    big = {"csrf_token": token, "name": "a" * (1024**2 + 1)}
    response = await authors.post("/admin/author/add/", data=big)
    assert response.status == 413
    text = await response.text()
    assert "<header>" in text
    assert f"more than {1024**2} bytes" in problem(text)
    assert await AdminAuthor.objects.count() == 0
