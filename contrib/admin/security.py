"""The admin's guard: ``authorize(request)`` for every request, a CSRF token for every POST.

Nothing is served unless ``authorize`` allows it: there is no default allowance. The CSRF
token is a random value in an ``HttpOnly``, ``SameSite=Strict`` cookie that every form repeats
in a hidden input (the double-submit pattern): another site can make a browser send the cookie
but can neither read it nor guess it, so it cannot write the matching input. Over HTTPS the
cookie is ``Secure`` too, so that the browser never sends it over plain HTTP, and named with the
``__Host-`` prefix (``Path=/``, no ``Domain``), so that a sibling subdomain (or a page over
plain HTTP) cannot plant a token of its choosing: browsers refuse such a cookie from anyone but
the admin's own host over HTTPS, and the admin reads no other name over HTTPS.
"""

from __future__ import annotations

import hmac
import inspect
import ipaddress
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping

import aiohttp_jinja2
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ..aiohttp.middlewares import new_style
from .errors import error_page, form_too_large_page

Authorize = Callable[[web.Request], bool | Awaitable[bool]]
"""Tells whether a request may use the admin (sync or async)."""

CSRF_COOKIE = "odm_admin_csrf"
"""The cookie holding the CSRF token over plain HTTP (local development), on the admin's path."""

CSRF_HOST_COOKIE = "__Host-odm_admin_csrf"
"""The cookie holding the CSRF token over HTTPS: ``Secure``, ``Path=/``, no ``Domain``, which
browsers accept from the admin's own host over HTTPS only (a sibling subdomain cannot plant it)."""

CSRF_FIELD = "csrf_token"
"""The hidden input every admin form carries."""

CSRF_TOKEN: web.RequestKey[str] = web.RequestKey("odm_admin_csrf_token", str)
"""The request's CSRF token, for the templates."""

PAGE_HEADERS = {
    # No other site may show the admin in a frame, to trick a click on its buttons.
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    # Pages show documents: none is kept by a shared cache, nor in the browser's once left.
    "Cache-Control": "no-store",
}
"""The headers of every answer of the admin (Django's admin sends the same, but the CSP)."""

TOKEN_BYTES = 32
"""The randomness of a CSRF token."""

TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
"""What a CSRF token the admin made looks like: a cookie of another shape (bytes that are not
text, a value some other page set) is not one, and is replaced by a new token."""


def local_only(request: web.Request) -> bool:
    """Allow requests from this machine only (loopback addresses), refuse everyone else.

    An allowance for a demo or a developer's laptop, not an authentication: behind a reverse
    proxy on the same machine every request would look local.
    """
    try:
        return request.remote is not None and ipaddress.ip_address(request.remote).is_loopback
    except ValueError:
        return False


UNREADABLE_FORM = (
    "The form's body cannot be read: it is not UTF-8 text (or names an unknown charset), "
    "or not a well-formed form. Send the form from its page again."
)
"""What a POST whose body is not a readable form is told (a 400)."""


CSRF_REFUSED = "The form's CSRF token is missing or wrong: reload the page and send the form again."
"""What a POST without the right CSRF token is told (a 403)."""


def not_authorized_page(request: web.Request) -> web.Response:
    """The 403 of a request ``authorize`` refuses: a whole page that names nothing of the site
    (no title, link or model), since whoever reads it may be anyone."""
    return aiohttp_jinja2.render_template("forbidden.html", request, {}, status=403)


def guard_middleware(authorize: Authorize, path: str) -> Middleware:
    """Build the middleware that authorizes every request and checks every POST's token.

    ``path`` is the cookie's path (the admin's prefix).
    """

    @new_style
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Refuse unauthorized requests (403), POSTs whose body is not a readable form (400) or
        is over the application's limits (413, the admin's page naming the limit), and POSTs
        without the right CSRF token (403); every answer carries :data:`PAGE_HEADERS`."""
        try:
            response = await checked(request, handler)
        except web.HTTPException as exc:  # a redirect, raised
            _add_page_headers(exc.headers)
            raise
        _add_page_headers(response.headers)
        return response

    async def checked(request: web.Request, handler: Handler) -> web.StreamResponse:
        """The guard's checks, then the handler; the CSRF cookie set when it was missing."""
        allowed = authorize(request)
        if inspect.isawaitable(allowed):
            allowed = await allowed
        if allowed is not True:
            return not_authorized_page(request)
        cookie = request.cookies.get(csrf_cookie_name(request), "")
        if not TOKEN_SHAPE.fullmatch(cookie):
            cookie = ""  # not a token the admin made: replaced, never used as one
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            try:
                posted = (await request.post()).get(CSRF_FIELD, "")
            except web.HTTPRequestEntityTooLarge as exc:
                # aiohttp's bare text 413: the admin's own page, saying which limit.
                return form_too_large_page(request, exc)
            except (ValueError, LookupError):  # not UTF-8, an unknown charset, bad multipart
                return error_page(request, 400, "Unreadable form", UNREADABLE_FORM)
            if (
                not cookie
                or not isinstance(posted, str)
                or not posted.isascii()  # compare_digest takes ASCII text only
                or not hmac.compare_digest(cookie, posted)
            ):
                return error_page(request, 403, "CSRF token refused", CSRF_REFUSED)
        token = cookie or new_token()
        request[CSRF_TOKEN] = token
        response = await handler(request)
        if not cookie:
            set_token_cookie(request, response, token, path)
        return response

    return guard


def _add_page_headers(headers: MutableMapping[str, str]) -> None:
    # A header the application already set is its choice: kept.
    for name, value in PAGE_HEADERS.items():
        headers.setdefault(name, value)


def new_token() -> str:
    """A new CSRF token: 32 random bytes, base64url (the shape of :data:`TOKEN_SHAPE`)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def csrf_cookie_name(request: web.Request) -> str:
    """The name of the CSRF cookie for ``request``: :data:`CSRF_HOST_COOKIE` over HTTPS,
    :data:`CSRF_COOKIE` over plain HTTP. Only that name is read: over HTTPS, a token under the
    plain name may have been planted by a sibling subdomain, and is no token."""
    return CSRF_HOST_COOKIE if request.secure else CSRF_COOKIE


def set_token_cookie(
    request: web.Request, response: web.StreamResponse, token: str, path: str
) -> None:
    """Set the CSRF cookie: ``HttpOnly``, ``SameSite=Strict``; when ``request`` came over HTTPS
    also ``Secure``, named with the ``__Host-`` prefix and on ``Path=/`` (which the prefix
    requires), else on ``path`` (the admin's prefix).

    ``request.secure`` is aiohttp's: the connection's TLS, or the scheme a middleware the
    application trusts has set (aiohttp-remotes, ``request.clone(scheme=...)``). A forwarded
    header is not read here: anyone can send one, and a ``Secure`` cookie set over plain HTTP
    would never come back, refusing every form.
    """
    secure = request.secure
    response.set_cookie(
        csrf_cookie_name(request),
        token,
        path="/" if secure else path,
        httponly=True,
        samesite="Strict",
        secure=secure,
    )
