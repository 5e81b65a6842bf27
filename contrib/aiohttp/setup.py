"""``setup_odm``: connect on startup through ``app.cleanup_ctx``, disconnect on shutdown.

The connection is made in the cleanup context rather than at import or in ``on_startup`` so that
it lives exactly as long as the running application: aiohttp enters the context before it
accepts requests and leaves it after the server stopped and in-flight handlers finished (its
shutdown order is on_shutdown, close the listening sockets and wait for handlers, then the
cleanup contexts in reverse), so no handler ever sees a closed client.

An application is started by one server at a time. aiohttp keeps one list of entered cleanup
contexts per application, not per server: a second server (``AppRunner``, ``TestServer``) that
starts an application another one serves adds its own to that list, and its cleanup leaves every
context in it, the first server's too. With an ODM connection that second start fails
(:class:`odm.AlreadyConnected`), and cleaning up after it disconnected the first server. So
``setup_odm`` refuses such a start before any context is entered, naming the application, and
stops the cleanup of the refused start before it reaches the contexts (``on_cleanup`` handlers
run in order; the first to raise ends the signal).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from odm.connection import DEFAULT_ALIAS, Connection, Retry, disconnect, redact_uri
from odm.drivers import DriverName
from odm.exceptions import ConfigurationError, ConnectionFailed
from odm.schema import ensure_indexes as ensure_declared_indexes
from odm.startup import connect

logger = logging.getLogger("odm.contrib.aiohttp")

ODM_CONNECTION: web.AppKey[Connection] = web.AppKey("odm_connection", Connection)
"""The :class:`odm.Connection` of the default alias, once the application has started."""

ODM_CONNECTIONS: web.AppKey[dict[str, Connection]] = web.AppKey("odm_connections", dict)
"""Every connection ``setup_odm`` made for this application, by alias."""

_ODM_ALIASES: web.AppKey[set[str]] = web.AppKey("odm_aliases", set)
"""The aliases ``setup_odm`` was called for on this application (connected or not yet)."""


@dataclass
class _Starts:
    """What ``setup_odm`` knows of its application's starts: how many of its contexts are
    entered (connected), how many starts it refused since, and whether a server began stopping
    the application (``on_shutdown``, which a start that failed never sends)."""

    open_contexts: int = 0
    refused: int = 0
    stopping: bool = False


_ODM_STARTS: web.AppKey[_Starts] = web.AppKey("odm_starts", _Starts)
"""The application's :class:`_Starts`, made by its first ``setup_odm`` call."""


def _hosts_of(uri: str | None) -> str:
    # Only the host list goes to the log: a URI may carry a password, with an unescaped "/" or
    # "?" in it (redact_uri cuts the user info off first; it parses by hand, as pymongo's
    # parse_uri resolves mongodb+srv names, which would block the event loop).
    if uri is None:
        return "the given client"
    rest = redact_uri(uri).split("://", 1)[-1].removeprefix("***@")
    hosts = rest.split("/", 1)[0].split("?", 1)[0]
    return hosts or "the configured server"


def _describe(error: BaseException) -> str:
    # An asyncio timeout carries no message; say what it means instead of printing nothing.
    if isinstance(error, TimeoutError) and not str(error):
        return "no answer before the deadline"
    return f"{type(error).__name__}: {error}"


def setup_odm(
    app: web.Application,
    uri: str | None = None,
    *,
    models: Iterable[type[Any]] = (),
    ensure_indexes: bool = True,
    retry: Retry | None = None,
    timeout: float = 10.0,
    alias: str = DEFAULT_ALIAS,
    db: str | None = None,
    driver: DriverName | None = None,
    client: Any = None,
    **client_options: Any,
) -> None:
    """Connect ``app`` to MongoDB while it runs: on startup, with retry; closed on shutdown.

    Registers a cleanup context that calls :func:`odm.connect` (same arguments), logs one
    warning per failed attempt, ensures the indexes of the bound models when ``ensure_indexes``
    is true, and stores the connection in ``app[ODM_CONNECTIONS][alias]`` (and in
    ``app[ODM_CONNECTION]`` for the default alias). When the last attempt fails, startup fails
    with :class:`odm.ConnectionFailed` within ``timeout`` seconds. Call it once per alias: a
    second call for an alias of ``app`` raises :class:`odm.ConfigurationError` (at startup the
    second connection would fail with :class:`odm.AlreadyConnected`, and the application with
    it). A start of ``app`` while another server serves it raises
    :class:`odm.ConfigurationError` naming it, and leaves that server connected (see the
    module's docstring).
    """
    _claim_alias(app, alias)
    starts = _guard_starts(app)
    bound = list(models)
    attempts = (retry or Retry()).attempts
    address = _hosts_of(uri)

    def log_failed_attempt(attempt: int, error: BaseException) -> None:
        remaining = attempts - attempt
        then = f"retrying ({remaining} attempt(s) left)" if remaining else "giving up"
        logger.warning(
            "MongoDB (alias %r, %s) not reachable, attempt %d of %d: %s; %s",
            alias,
            address,
            attempt,
            attempts,
            _describe(error),
            then,
        )

    async def odm_context(app: web.Application) -> AsyncIterator[None]:
        try:
            connection = await connect(
                uri,
                # None, not []: connect() then binds the models registered for the alias.
                models=bound or None,
                alias=alias,
                db=db,
                retry=retry,
                timeout=timeout,
                driver=driver,
                client=client,
                on_retry=log_failed_attempt,
                **client_options,
            )
        except ConnectionFailed as exc:
            logger.error("odm: application startup failed: %s", exc)
            raise
        starts.open_contexts += 1
        try:
            if ensure_indexes:
                created = await ensure_declared_indexes(
                    alias, models=bound or None, timeout=timeout
                )
                logger.info("odm: alias %r indexes ensured, created: %s", alias, created)
            logger.info("odm: alias %r connected to %s", alias, connection.address)
            app[ODM_CONNECTIONS][alias] = connection
            if alias == DEFAULT_ALIAS:
                app[ODM_CONNECTION] = connection
            yield
        finally:
            # Reached after aiohttp waited for in-flight handlers (see the module docstring),
            # or at once when a later startup step failed.
            # The dict, not the app: a started application must not change (aiohttp warns), so
            # app[ODM_CONNECTION] keeps the closed connection after shutdown.
            app[ODM_CONNECTIONS].pop(alias, None)
            starts.open_contexts -= 1
            await disconnect(alias)
            logger.info("odm: alias %r disconnected", alias)

    if ODM_CONNECTIONS not in app:
        app[ODM_CONNECTIONS] = {}
    app.cleanup_ctx.append(odm_context)


def _claim_alias(app: web.Application, alias: str) -> None:
    """Record that ``app`` connects ``alias``; raise if an earlier ``setup_odm`` call did."""
    claimed = app.setdefault(_ODM_ALIASES, set())
    if alias in claimed:
        raise ConfigurationError(
            f"setup_odm() was already called for alias {alias!r} on this application; call it "
            "once per alias (another database needs an alias of its own: alias='reports')"
        )
    claimed.add(alias)


def _guard_starts(app: web.Application) -> _Starts:
    """The :class:`_Starts` of ``app``; on the first call, the handlers that refuse a second
    start of ``app`` while it is served, and the cleanup of such a start."""
    starts = app.get(_ODM_STARTS)
    if starts is None:
        starts = app[_ODM_STARTS] = _Starts()
        # First in their signals: before aiohttp enters or leaves any cleanup context.
        app.on_startup.insert(0, _refuse_second_start)
        app.on_shutdown.append(_note_stopping)
        app.on_cleanup.insert(0, _end_cleanup_of_refused_start)
    return starts


async def _refuse_second_start(app: web.Application) -> None:
    """Raise :class:`odm.ConfigurationError` when ``app`` is started while a server serves it."""
    starts = app[_ODM_STARTS]
    if starts.open_contexts:
        starts.refused += 1
        aliases: set[str] = app[_ODM_ALIASES]
        raise ConfigurationError(
            f"the aiohttp application {app!r} is already started and connected by setup_odm "
            f"(alias(es) {sorted(aliases)}): another server or runner serves it. "
            "An application runs in one server at a time; build one application per server"
        )


async def _note_stopping(app: web.Application) -> None:
    """Record that a server began stopping ``app`` (only a started server sends on_shutdown)."""
    app[_ODM_STARTS].stopping = True


async def _end_cleanup_of_refused_start(app: web.Application) -> None:
    """End the cleanup of a start :func:`_refuse_second_start` refused, before it leaves the
    contexts of the server that serves ``app``; let the cleanup of that server through."""
    starts = app[_ODM_STARTS]
    if starts.refused and not starts.stopping:
        starts.refused -= 1
        raise ConfigurationError(
            f"this cleanup is that of a start of the aiohttp application {app!r} that setup_odm "
            "refused (another server serves it): nothing was cleaned up, and that server keeps "
            "its connections"
        )
    starts.refused = 0
    starts.stopping = False
