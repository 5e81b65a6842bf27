"""The admin's cookies and headers: the CSRF cookie is ``HttpOnly`` and ``SameSite=Strict``
always, and ``Secure`` when the request came over HTTPS as aiohttp tells it (``request.secure``:
TLS, or a scheme a middleware the application trusts has set), never because of a header anyone
can send (was: never ``Secure``); a cookie that is not a token the admin made is replaced, not
used (was: a 500 on every page for bytes that are not UTF-8); every answer forbids framing and
caching (was: no such header)."""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from http.cookies import SimpleCookie
from typing import Any

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from odm.contrib.admin import CSRF_COOKIE, CSRF_HOST_COOKIE, ModelAdmin
from odm.drivers import DriverName
from tests.integration.admin.admin_refusals_app import serving_app
from tests.integration.admin.conftest import Client, csrf
from tests.integration.admin.support import ADMIN_HEADER, AdminAuthor

FORWARDED = {"X-Forwarded-Proto": "https", "Forwarded": "proto=https"}
"""What a client (or a proxy) may claim about the scheme."""


@web.middleware
async def trusted_proxy(request: web.Request, handler: Handler) -> web.StreamResponse:
    """What an application behind a TLS proxy it trusts does (as aiohttp-remotes would): take
    the scheme from the proxy's header."""
    scheme = request.headers.get("X-Forwarded-Proto", request.scheme)
    return await handler(request.clone(scheme=scheme))


async def served(aiohttp_client: Any, uri: str, driver: DriverName, *, proxied: bool) -> Client:
    """A client of the authors' admin, allowed in; ``proxied``: the app trusts its proxy."""
    app = serving_app(uri, driver, [AdminAuthor], [ModelAdmin(AdminAuthor, name="author")])
    if proxied:
        app.middlewares.append(trusted_proxy)
    client: Client = await aiohttp_client(app, headers={ADMIN_HEADER: "yes"})
    return client


def set_cookies(response: Any) -> SimpleCookie:
    """Every cookie the response sets."""
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        jar.load(header)
    return jar


PAGES = ["/admin/", "/admin/author/", "/admin/author/add/", "/admin/nosuch/"]
"""Pages of every kind that set the cookie: the index, a list, a form, an error page."""


@pytest.mark.parametrize(("proxied", "secure"), [(False, False), (True, True)])
async def test_the_csrf_cookie_is_secure_when_the_request_came_over_https(
    aiohttp_client: Any, odm_uri: str, odm_driver: DriverName, proxied: bool, secure: bool
) -> None:
    client = await served(aiohttp_client, odm_uri, odm_driver, proxied=proxied)
    # Over HTTPS the __Host- name, which requires Path=/ (test_admin_csrf_host_cookie.py).
    name, cookie_path = (CSRF_HOST_COOKIE, "/") if secure else (CSRF_COOKIE, "/admin")
    for path in PAGES:
        client.session.cookie_jar.clear()  # a first visit: the cookie is set
        response = await client.get(path, headers=FORWARDED)
        cookies = set_cookies(response)
        assert list(cookies) == [name], (path, cookies)  # the admin's only cookie
        cookie = cookies[name]
        assert cookie["httponly"] is True and cookie["samesite"] == "Strict", path
        assert cookie["path"] == cookie_path, path
        # Unproxied, the forwarded headers are anyone's claim: the cookie must stay usable
        # over the plain HTTP it came by.
        assert bool(cookie["secure"]) is secure, (path, cookie.OutputString())


async def test_plain_http_without_forwarded_headers_gets_no_secure_cookie(
    aiohttp_client: Any, odm_uri: str, odm_driver: DriverName
) -> None:
    client = await served(aiohttp_client, odm_uri, odm_driver, proxied=True)
    cookie = set_cookies(await client.get("/admin/author/"))[CSRF_COOKIE]
    assert not cookie["secure"] and cookie["httponly"] is True


async def test_a_cookie_that_is_not_a_token_of_the_admin_is_replaced(
    aiohttp_client: Any, odm_uri: str, odm_driver: DriverName
) -> None:
    client = await served(aiohttp_client, odm_uri, odm_driver, proxied=False)
    host, port = client.server.host, client.server.port
    for cookie in (b"\xff\xfe", b"\xed\xa0\x80", "\u00e9".encode(), b"short", b"x" * 43 + b"!"):
        sent = b"Cookie: odm_admin_csrf=" + cookie
        page = await raw_request(host, port, b"GET", sent)
        assert page.startswith(b"HTTP/1.1 200"), (cookie, page)
        # The page sets a token of its own, for its form to repeat.
        assert re.search(rb"Set-Cookie: odm_admin_csrf=[A-Za-z0-9_-]{43};", page), (cookie, page)
        # Repeating the cookie is no token.
        refused = await raw_request(host, port, b"POST", sent, token=cookie)
        assert refused.startswith(b"HTTP/1.1 403"), (cookie, refused)


async def raw_request(
    host: str, port: int, method: bytes, header: bytes, token: bytes = b""
) -> bytes:
    """The head of the answer to a request for the authors' add form carrying ``header``
    (raw bytes: a client library would not send bytes that are not text) and, when posted,
    the form's ``token``."""
    body = b"csrf_token=" + urllib.parse.quote_from_bytes(token).encode() + b"&name=a"
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"%s /admin/author/add/ HTTP/1.1\r\nHost: x\r\n%s: yes\r\n%s\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n%s" % (method, ADMIN_HEADER.encode(), header, len(body), body)
    )
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer.split(b"\r\n\r\n", 1)[0]


PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


async def test_every_answer_forbids_framing_and_caching(
    aiohttp_client: Any, odm_uri: str, odm_driver: DriverName
) -> None:
    client = await served(aiohttp_client, odm_uri, odm_driver, proxied=False)
    token = await csrf(client, "/admin/author/add/")
    answers = [await client.get(path) for path in PAGES]
    answers.append(await client.get("/admin/author/", headers={ADMIN_HEADER: "no"}))  # 403
    answers.append(await client.post("/admin/author/add/", data={"name": "a"}))  # no token
    saved = await client.post(
        "/admin/author/add/", data={"csrf_token": token, "name": "a"}, allow_redirects=False
    )
    assert saved.status == 303
    for response in [*answers, saved]:
        shown = {name: response.headers.get(name) for name in PAGE_HEADERS}
        assert shown == PAGE_HEADERS, (response.url, response.status, shown)
