"""``setup_odm``: connect on startup through ``app.cleanup_ctx``, disconnect on shutdown.

The connection is made in the cleanup context rather than at import or in ``on_startup`` so that
it lives exactly as long as the running application: aiohttp enters the context before it
accepts requests and leaves it after the server stopped and in-flight handlers finished (its
shutdown order is on_shutdown, close the listening sockets and wait for handlers, then the
cleanup contexts in reverse), so no handler ever sees a closed client.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
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
    it).
    """
    _claim_alias(app, alias)
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
