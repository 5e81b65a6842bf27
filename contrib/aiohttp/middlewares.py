"""``unit_of_work_middleware``: one transaction per unsafe request, committed only on success.

A request whose method changes state (POST, PUT, PATCH, DELETE by default) runs its handler
inside :func:`odm.blocks.transaction`. The transaction commits when the handler returns a response
with a status below 400, or raises an ``HTTPException`` below 400 (a redirect such as
``HTTPFound``, re-raised after the commit so that aiohttp sends it). Everything else aborts: a
returned or raised 4xx/5xx, any other exception, an ``HTTPException`` of any status raised once
the handler started its response (it cannot be sent: the client gets a response cut short), and
a cancelled handler (the client went away and the server runs with
``handler_cancellation=True``), which is logged with how its transaction ended. So a handler
never has to undo its own writes: failing is enough.

Safe requests (GET, HEAD, OPTIONS, ...) run without a transaction, optionally inside
:func:`odm.session.session` so that the reads of one request are causally consistent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import TypeVar

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from odm.blocks import transaction
from odm.connection import DEFAULT_ALIAS
from odm.session import session as causal_session
from odm.uow import UnitOfWork

logger = logging.getLogger("odm.contrib.aiohttp")

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


def logged_path(request: web.Request) -> str:
    """The request's path for a log line, percent-encoded as the client sent it.

    Not ``request.path``: decoded, a ``%0a`` in it would start a forged line of the log.
    """
    return request.rel_url.raw_path


def response_started(request: web.Request) -> bool:
    """Whether the handler has already sent part of its response (prepared a StreamResponse
    or a websocket). The same test aiohttp makes before it answers an error itself."""
    return request.writer.output_size > 0


def _log_cancelled(request: web.Request, uow: UnitOfWork | None) -> None:
    """Say in the log that the handler of ``request`` was cancelled, and what became of its
    writes: no response tells anyone (the client is gone, or the server is stopping)."""
    if uow is not None and uow.committed:
        # Cancelled during the commit, which odm lets finish: the writes are kept.
        outcome = "after its transaction committed: its writes are kept"
    else:
        outcome = "and its transaction aborted: nothing it wrote is kept"
    logger.info(
        "%s %s: cancelled (the client went away, or the server is stopping) %s",
        request.method,
        logged_path(request),
        outcome,
    )


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
        uow: UnitOfWork | None = None
        try:
            async with transaction(alias) as uow:
                try:
                    response = await handler(request)
                except web.HTTPException as exc:
                    if exc.status >= COMMIT_BELOW or response_started(request):
                        # Raised after the response started, even a redirect cannot be sent:
                        # the client gets a response cut short, a failure, so nothing is kept.
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
        except asyncio.CancelledError:
            _log_cancelled(request, uow)
            raise
        if redirect is not None:
            raise redirect
        return response

    return unit_of_work_middleware


unit_of_work_middleware: Middleware = unit_of_work_middleware_factory()
"""The unit-of-work middleware with the defaults: POST/PUT/PATCH/DELETE on the default alias."""
