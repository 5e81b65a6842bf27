"""Over HTTPS the admin's CSRF cookie is ``__Host-odm_admin_csrf`` (``Secure``, ``Path=/``, no
``Domain``), which browsers take only from the admin's own host over HTTPS, so a sibling
subdomain cannot plant a token; over plain HTTP it keeps its plain name on the admin's path.
A token under the other name is no token (was: one plain name over HTTPS too, on ``/admin``,
which any subdomain may set)."""

from __future__ import annotations

from typing import Any

import pytest

from odm.contrib.admin import CSRF_COOKIE, CSRF_HOST_COOKIE, ModelAdmin
from odm.drivers import DriverName
from tests.integration.admin.admin_refusals_app import serving_app
from tests.integration.admin.conftest import Client
from tests.integration.admin.support import ADMIN_HEADER, AdminAuthor
from tests.integration.admin.test_admin_cookies_and_headers import set_cookies, trusted_proxy

HTTPS = {"X-Forwarded-Proto": "https"}
"""What the proxy the test app trusts says of a request that came over HTTPS."""

TOKEN = "t" * 43
"""A token of the admin's shape, as a planted cookie would hold."""


@pytest.fixture
async def authors(aiohttp_client: Any, odm_uri: str, odm_driver: DriverName) -> Client:
    """A client of the authors' admin behind a proxy it trusts, allowed in."""
    app = serving_app(odm_uri, odm_driver, [AdminAuthor], [ModelAdmin(AdminAuthor, name="author")])
    app.middlewares.append(trusted_proxy)
    client: Client = await aiohttp_client(app, headers={ADMIN_HEADER: "yes"})
    return client


@pytest.mark.parametrize(
    ("scheme", "name", "path"),
    [({}, CSRF_COOKIE, "/admin"), (HTTPS, CSRF_HOST_COOKIE, "/")],
    ids=["http", "https"],
)
async def test_the_cookie_is_named_for_the_scheme(
    authors: Client, scheme: dict[str, str], name: str, path: str
) -> None:
    cookies = set_cookies(await authors.get("/admin/author/add/", headers=scheme))
    assert list(cookies) == [name]
    cookie = cookies[name]
    assert (cookie["path"], cookie["domain"], bool(cookie["secure"])) == (path, "", bool(scheme))
    authors.session.cookie_jar.clear()
    # Its token, under its name, lets a form through.
    saved = await post_with(authors, scheme, name, cookie.value)
    assert saved.status == 303, await saved.text()
    assert [a.name for a in await AdminAuthor.objects.all()] == ["a"]


@pytest.mark.parametrize(
    ("scheme", "planted"),
    [(HTTPS, CSRF_COOKIE), ({}, CSRF_HOST_COOKIE)],
    ids=["plain-name-over-https", "host-name-over-http"],
)
async def test_a_token_under_the_other_name_is_refused(
    authors: Client, scheme: dict[str, str], planted: str
) -> None:
    refused = await post_with(authors, scheme, planted, TOKEN)
    assert refused.status == 403
    assert "CSRF token is missing or wrong" in await refused.text()
    assert await AdminAuthor.objects.count() == 0


async def post_with(client: Client, scheme: dict[str, str], cookie: str, token: str) -> Any:
    """Post an author named "a" with ``token`` in the form and in the cookie ``cookie``."""
    client.session.cookie_jar.clear()
    return await client.post(
        "/admin/author/add/",
        data={"csrf_token": token, "name": "a"},
        headers={**scheme, "Cookie": f"{cookie}={token}"},
        allow_redirects=False,
    )
