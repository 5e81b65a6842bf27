"""The guard's refusals are proper pages: to a stranger (not authorized) a minimal page that
names nothing of the site (no title, no links, no model), to an authorized user (a CSRF token
missing or wrong, a body that is not a readable form) the admin's own error page; every one with
the admin's headers (was: a bare ``<title>403</title><h1>403</h1>`` fragment, without html, lang
or charset)."""

from __future__ import annotations

import re

from aiohttp import ClientResponse

from odm.contrib.admin.security import PAGE_HEADERS
from tests.integration.admin.conftest import Client, csrf
from tests.integration.admin.support import AdminBook

HEAD = '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>'
"""How every page of the admin starts."""

SECRETS = ("odm admin", "book", "Book", "Author", "setting", "Migrations", "href", "<a", "<form")
"""What a stranger's page must not show: the site's title, its models, a link, a form."""


def assert_a_page(response: ClientResponse, text: str, title: str) -> None:
    """``text`` (the body of ``response``) is a whole UTF-8 HTML page titled ``title``, sent
    with the admin's headers."""
    assert response.content_type == "text/html"
    assert response.charset == "utf-8"
    assert text.startswith(HEAD), text[:200]
    assert f"<title>{title}</title>" in text, text[:300]
    assert text.rstrip().endswith("</html>")
    for name, value in PAGE_HEADERS.items():
        assert response.headers.get(name) == value, name


async def test_a_stranger_is_shown_a_page_naming_nothing_of_the_site(stranger: Client) -> None:
    for method, path in [
        ("GET", "/admin/"),
        ("GET", "/admin/book/"),
        ("GET", "/admin/_migrations/"),
        ("POST", "/admin/book/add/"),
    ]:
        response = await stranger.request(method, path, data={"title": "x"})
        assert response.status == 403, path
        text = await response.text()
        assert_a_page(response, text, "403 Forbidden")
        assert "Not authorized" in text
        for secret in SECRETS:
            assert secret not in text, (path, secret)
    assert await AdminBook.objects.count() == 0


async def test_a_missing_csrf_token_is_the_admins_error_page(admin: Client) -> None:
    await csrf(admin)
    for form in [{"title": "x", "pages": "1"}, {"title": "x", "pages": "1", "csrf_token": "no"}]:
        response = await admin.post("/admin/book/add/", data=form)
        assert response.status == 403
        text = await response.text()
        assert_a_page(response, text, "403 CSRF token refused")
        problem = re.search(r'<p class="error" id="problem">([^<]*)</p>', text)
        assert problem is not None, text
        assert "CSRF token is missing or wrong" in problem.group(1)
        assert '<a href="/admin/"><strong>odm admin</strong></a>' in text  # the admin's header
    assert await AdminBook.objects.count() == 0


async def test_an_unreadable_form_is_the_admins_error_page(admin: Client) -> None:
    token = await csrf(admin)
    response = await admin.post(
        "/admin/book/add/",
        data=f"csrf_token={token}&title=\xff".encode("latin-1"),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 400
    text = await response.text()
    assert_a_page(response, text, "400 Unreadable form")
    problem = re.search(r'<p class="error" id="problem">([^<]*)</p>', text)
    assert problem is not None, text
    assert "cannot be read" in problem.group(1)
    assert '<a href="/admin/"><strong>odm admin</strong></a>' in text
    assert await AdminBook.objects.count() == 0
