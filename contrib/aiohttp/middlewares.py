"""``unit_of_work_middleware``: one transaction per unsafe request, committed only on success.

A request whose method changes state (POST, PUT, PATCH, DELETE by default) runs its handler
inside :func:`odm.blocks.transaction`. The transaction commits when the handler returns a response
with a status below 400, or raises an ``HTTPException`` below 400 (a redirect such as
``HTTPFound``, re-raised after the commit so that aiohttp sends it). Everything else aborts: a
returned or raised 4xx/5xx, any other exception, and a cancelled handler (the client went away
and the server runs with ``handler_cancellation=True``). So a handler never has to undo its own
writes: failing is enough.

Safe requests (GET, HEAD, OPTIONS, ...) run without a transaction, optionally inside
:func:`odm.session.session` so that the reads of one request are causally consistent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from odm.blocks import transaction
from odm.connection import DEFAULT_ALIAS
from odm.session import session as causal_session

UNSAFE_METHODS: frozenset[str] = frozenset({"POST", "PUT", "PATCH", "DELETE"})
"""The methods that run in a transaction unless told otherwise."""

COMMIT_BELOW = 400
"""A response with a status below this commits the unit of work; any other aborts it."""

_F = TypeVar("_F", bound=Callable[..., object])


def new_style(function: _F) -> _F:
    """Mark ``function`` as a ``(request, handler)`` middleware for every aiohttp version.

    aiohttp 3.x still treats an unmarked function as an old-style middleware factory (called
    with ``(app, handler)``, with a DeprecationWarning), so there it needs ``web.middleware``;
    aiohttp 4 takes plain functions and deprecates the decorator, so there it is left alone.
    """
    if int(aiohttp.__version__.split(".", 1)[0]) < 4:
        return web.middleware(function)
    return function


class _Rollback(Exception):
    """Leaves the transaction block with an exception (so it aborts) carrying the response."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__(response.status)
        self.response = response


def unit_of_work_middleware_factory(
    *,
    methods: Iterable[str] = UNSAFE_METHODS,
    alias: str = DEFAULT_ALIAS,
    causal_reads: bool = False,
) -> Middleware:
    """Build a unit-of-work middleware for ``methods`` on the connection ``alias``.

    Requests with a method in ``methods`` (case-insensitive) run in one transaction, committed
    only for a status below 400; the others run without one, inside a causally consistent
    session when ``causal_reads`` is true. ``methods`` given as one string (``"POST"``) raises
    ``TypeError``: read letter by letter, it would name no method, and no request would get a
    transaction.
    """
    if isinstance(methods, str):
        raise TypeError(
            f"methods must be a list of HTTP methods (methods=[{methods!r}]), not a string"
        )
    unsafe = frozenset(method.upper() for method in methods)

    @new_style
    async def unit_of_work_middleware(
        request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        """Run an unsafe request's handler in one transaction, committed only on success."""
        if request.method not in unsafe:
            if not causal_reads:
                return await handler(request)
            async with causal_session(alias):
                return await handler(request)
        redirect: web.HTTPException | None = None
        try:
            async with transaction(alias):
                try:
                    response = await handler(request)
                except web.HTTPException as exc:
                    if exc.status >= COMMIT_BELOW:
                        raise
                    # A redirect or other success raised as an exception: commit first (by
                    # leaving the block normally), then raise it for aiohttp to send.
                    redirect = exc
                else:
                    if response.status >= COMMIT_BELOW:
                        # transaction() commits on a normal exit; only an exception aborts.
                        raise _Rollback(response)
        except _Rollback as rollback:
            return rollback.response
        if redirect is not None:
            raise redirect
        return response

    return unit_of_work_middleware


unit_of_work_middleware: Middleware = unit_of_work_middleware_factory()
"""The unit-of-work middleware with the defaults: POST/PUT/PATCH/DELETE on the default alias."""
