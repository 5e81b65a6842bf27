"""``odm.connect``: open a connection, then (on request) create the indexes the models declare.

The connection itself is the wire layer's job (:func:`odm.connection.open_connection`); creating
indexes runs queries through the executor (:mod:`odm.schema`). Composing the two here keeps the
wire layer free of anything above it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .connection import DEFAULT_ALIAS, Connection, Retry, open_connection
from .drivers import DriverName
from .schema import ensure_indexes as create_declared_indexes

__all__ = ["connect"]


async def connect(
    uri: str | None = None,
    *,
    models: Iterable[type[Any]] | None = None,
    alias: str = DEFAULT_ALIAS,
    db: str | None = None,
    retry: Retry | None = None,
    timeout: float = 10.0,
    driver: DriverName | None = None,
    client: Any = None,
    on_retry: Callable[[int, BaseException], None] | None = None,
    ensure_indexes: bool = False,
    **client_options: Any,
) -> Connection:
    """Create and check the client for ``alias`` and bind ``models`` to it.

    ``uri`` names the server and (in its path) the database, unless ``db=`` is given. Pass a
    ready ``client=`` (PyMongo async or Motor) instead of ``uri`` to reuse one; it is not closed
    by :func:`odm.disconnect`. ``on_retry(attempt, error)`` is called after each failed ping
    (attempt counts from 1), e.g. to log it. Raises :class:`odm.AlreadyConnected` if ``alias``
    is connected, :class:`odm.ConnectionFailed` when the ping fails after every retry. With
    ``ensure_indexes=True`` the bound models' indexes are created before it returns.
    """
    connection = await open_connection(
        uri,
        models=models,
        alias=alias,
        db=db,
        retry=retry,
        timeout=timeout,
        driver=driver,
        client=client,
        on_retry=on_retry,
        **client_options,
    )
    if ensure_indexes:
        await create_declared_indexes(alias)
    return connection
