"""The admin's guard: ``authorize(request)`` for every request, a CSRF token for every POST.

Nothing is served unless ``authorize`` allows it: there is no default allowance. The CSRF
token is a random value in an ``HttpOnly``, ``SameSite=Strict`` cookie that every form repeats
in a hidden input (the double-submit pattern): another site can make a browser send the cookie
but can neither read it nor guess it, so it cannot write the matching input.
"""

from __future__ import annotations

import hmac
import inspect
import ipaddress
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ..aiohttp.middlewares import new_style

Authorize = Callable[[web.Request], bool | Awaitable[bool]]
"""Tells whether a request may use the admin (sync or async)."""

CSRF_COOKIE = "odm_admin_csrf"
"""The cookie holding the CSRF token."""

CSRF_FIELD = "csrf_token"
"""The hidden input every admin form carries."""

CSRF_TOKEN: web.RequestKey[str] = web.RequestKey("odm_admin_csrf_token", str)
"""The request's CSRF token, for the templates."""


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


def _refused(status: int, message: str) -> web.Response:
    return web.Response(
        status=status,
        text=f"<!doctype html><title>{status}</title><h1>{status}</h1><p>{message}</p>",
        content_type="text/html",
    )


def guard_middleware(authorize: Authorize, path: str) -> Middleware:
    """Build the middleware that authorizes every request and checks every POST's token.

    ``path`` is the cookie's path (the admin's prefix).
    """

    @new_style
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Refuse unauthorized requests (403), POSTs whose body is not a readable form (400)
        and POSTs without the right CSRF token (403)."""
        allowed = authorize(request)
        if inspect.isawaitable(allowed):
            allowed = await allowed
        if allowed is not True:
            return _refused(
                403, "Not authorized: this admin serves only whom its authorize callable allows."
            )
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            try:
                posted = (await request.post()).get(CSRF_FIELD, "")
            except (ValueError, LookupError):  # not UTF-8, an unknown charset, bad multipart
                return _refused(400, UNREADABLE_FORM)
            if (
                not cookie
                or not isinstance(posted, str)
                or not hmac.compare_digest(cookie.encode(), posted.encode())
            ):
                return _refused(
                    403,
                    "The form's CSRF token is missing or wrong: reload the "
                    "page and send the form again.",
                )
        token = cookie or secrets.token_urlsafe(32)
        request[CSRF_TOKEN] = token
        response = await handler(request)
        if not cookie:
            response.set_cookie(CSRF_COOKIE, token, path=path, httponly=True, samesite="Strict")
        return response

    return guard
