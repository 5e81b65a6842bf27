"""Connecting: one client per alias for the whole app, created once and reused.

``open_connection`` (behind :func:`odm.connect`) creates the client (PyMongo's
``AsyncMongoClient`` unless ``driver="motor"`` or a ready ``client=`` is given), checks the
server with a ``ping`` retried with exponential backoff, and binds Document classes to the
alias. It never waits past ``timeout`` seconds and fails with :class:`odm.ConnectionFailed`
naming the address and the last cause.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pymongo.errors import ConfigurationError as DriverConfigurationError
from pymongo.errors import PyMongoError
from pymongo.uri_parser import parse_uri

from . import drivers
from .drivers import DriverName
from .exceptions import AlreadyConnected, ConfigurationError, ConnectionFailed, NotConnected
from .timeouts import check_timeout

DEFAULT_ALIAS = "default"


@dataclass(frozen=True)
class Retry:
    """How :func:`odm.connect` retries its first ping: ``attempts`` tries, sleeping
    ``backoff`` seconds after the first failure and doubling each time, never more than
    ``max_backoff``."""

    attempts: int = 5
    backoff: float = 0.2
    max_backoff: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"Retry.attempts must be at least 1, not {self.attempts}")
        if self.backoff < 0 or self.max_backoff < 0:
            raise ValueError("Retry.backoff and Retry.max_backoff must not be negative")

    def delay(self, failed_attempts: int) -> float:
        """Seconds to wait after ``failed_attempts`` failures (1 for the first)."""
        return float(min(self.backoff * 2 ** (failed_attempts - 1), self.max_backoff))


@dataclass
class Connection:
    """What :func:`odm.connect` bound under one alias: the client, its database and its models."""

    alias: str
    client: Any
    database: Any
    driver: DriverName
    address: str
    models: list[type[Any]] = field(default_factory=list)
    owns_client: bool = True


_connections: dict[str, Connection] = {}
_model_aliases: dict[type[Any], str] = {}


#: URI options whose values are secrets (a key file's password, AWS session tokens).
_SECRET_OPTION = re.compile(
    r"(?i)([?&;][^=&;]*(?:password|authmechanismproperties)[^=&;]*=)[^&;]*"
)


def redact_uri(uri: str) -> str:
    """Return ``uri`` fit for a message or a log: user info and secret options become ``***``.

    ``mongodb://deploy:s3cret@db1:27017/shop`` reads ``mongodb://***@db1:27017/shop``. Parsed
    by hand, without the driver: the URIs worth redacting are often the malformed ones (an
    unescaped ``@``, ``/`` or ``?`` in the password), and parsing a ``mongodb+srv`` URI would
    resolve its name. When unsure where the user info ends, more is hidden, never less.
    """
    scheme, sep, rest = uri.partition("://")
    if not sep:
        scheme, rest = "", uri
    # Secret options first: an "@" in their values must not be taken for the user info's end.
    rest = _SECRET_OPTION.sub(r"\1***", rest)
    # The user info ends at the last "@" before the options; an "@" only after a "?" may still
    # end a password holding an unescaped "?", so then everything up to it is hidden.
    before_options = rest.split("?", 1)[0]
    cut = before_options.rfind("@") if "@" in before_options else rest.rfind("@")
    if cut >= 0:
        rest = "***" + rest[cut:]
    return scheme + sep + rest


def _address_of(uri: str) -> str:
    try:
        nodes = parse_uri(uri, warn=True).get("nodelist") or []
    except (DriverConfigurationError, ValueError):
        return redact_uri(uri)
    return ",".join(f"{host}:{port}" for host, port in nodes) or redact_uri(uri)


def _database_name(uri: str | None, db: str | None) -> str:
    if db:
        return db
    if uri:
        try:
            name = parse_uri(uri, warn=True).get("database")
        except (DriverConfigurationError, ValueError) as exc:
            raise ConfigurationError(f"invalid MongoDB URI {redact_uri(uri)!r}: {exc}") from exc
        if name:
            return str(name)
    raise ConfigurationError(
        "no database name: put one in the URI (mongodb://host:27017/shop) or pass db='shop'"
    )


async def _ping_with_retry(
    client: Any,
    address: str,
    retry: Retry,
    timeout: float,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    last: BaseException | str = "no attempt was made"
    for attempt in range(1, retry.attempts + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            async with asyncio.timeout(remaining):
                await client.admin.command("ping")
            return
        except (PyMongoError, TimeoutError, OSError) as exc:
            last = exc if not isinstance(exc, TimeoutError) else f"no answer within {timeout:g} s"
            if on_retry is not None:
                on_retry(attempt, exc)
        if attempt < retry.attempts:
            pause = min(retry.delay(attempt), deadline - time.monotonic())
            if pause > 0:
                await asyncio.sleep(pause)
    raise ConnectionFailed(address, last, attempts=attempt)


async def open_connection(
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
    **client_options: Any,
) -> Connection:
    """Create and check the client for ``alias`` and bind ``models`` to it.

    ``uri`` names the server and (in its path) the database, unless ``db=`` is given. Pass a
    ready ``client=`` (PyMongo async or Motor) instead of ``uri`` to reuse one; it is not closed
    by :func:`disconnect`. ``on_retry(attempt, error)`` is called after each failed ping
    (attempt counts from 1), e.g. to log it. Raises :class:`odm.AlreadyConnected` if ``alias``
    is connected, :class:`odm.ConnectionFailed` when the ping fails after every retry.
    Users call :func:`odm.connect`, which also creates the declared indexes on request.
    """
    if alias in _connections:
        raise AlreadyConnected(
            f"alias {alias!r} is already connected to {_connections[alias].address}; "
            "call odm.disconnect() first or connect with another alias="
        )
    check_timeout(timeout)
    retry = retry or Retry()
    owns_client = client is None
    if client is None:
        if uri is None:
            raise ConfigurationError("connect() needs a uri or a client=")
        chosen: DriverName = driver or "pymongo"
        per_try_ms = max(500, int(timeout * 1000 / retry.attempts))
        client_options.setdefault("serverSelectionTimeoutMS", per_try_ms)
        client_options.setdefault("tz_aware", True)
        client_options.setdefault("uuidRepresentation", "standard")
        try:
            client = drivers.create_client(uri, chosen, **client_options)
        except (DriverConfigurationError, ValueError) as exc:  # ValueError: a malformed host
            raise ConfigurationError(f"invalid MongoDB URI {redact_uri(uri)!r}: {exc}") from exc
        address = _address_of(uri)
    else:
        chosen = drivers.driver_of(client)
        if driver is not None and driver != chosen:
            raise ConfigurationError(f"driver={driver!r} given with a {chosen} client")
        address = ",".join(f"{h}:{p}" for h, p in _client_nodes(client)) or "the given client"
    name = _database_name(uri, db) if (uri or db) else _default_database_name(client)
    try:
        await _ping_with_retry(client, address, retry, timeout, on_retry)
    except BaseException:
        if owns_client:
            await drivers.close_client(client)
        raise
    bound = list(models) if models is not None else []
    connection = Connection(
        alias=alias,
        client=client,
        database=client[name],
        driver=chosen,
        address=address,
        models=bound,
        owns_client=owns_client,
    )
    _connections[alias] = connection
    for model in bound:
        _model_aliases[model] = alias
    _changed()
    return connection


def _client_nodes(client: Any) -> list[tuple[str, int]]:
    try:
        return list(client._topology_settings.seeds)
    except AttributeError:
        return []


def _default_database_name(client: Any) -> str:
    try:
        return str(client.get_default_database().name)
    except (DriverConfigurationError, AttributeError, TypeError) as exc:
        raise ConfigurationError(
            "the client= given has no default database: pass db='name'"
        ) from exc


async def disconnect(alias: str | None = DEFAULT_ALIAS) -> None:
    """Close the client of ``alias`` (every alias when ``None``) and forget its bindings.

    Disconnecting an alias that is not connected does nothing.
    """
    aliases = list(_connections) if alias is None else [alias]
    for name in aliases:
        connection = _connections.pop(name, None)
        if connection is None:
            continue
        for model in [m for m, a in _model_aliases.items() if a == name]:
            del _model_aliases[model]
        _changed()
        if connection.owns_client:
            await drivers.close_client(connection.client)


def get_connection(alias: str = DEFAULT_ALIAS) -> Connection:
    """Return the :class:`Connection` of ``alias``; :class:`odm.NotConnected` if there is none."""
    try:
        return _connections[alias]
    except KeyError:
        known = ", ".join(repr(a) for a in _connections) or "none"
        raise NotConnected(
            f"alias {alias!r} is not connected (connected: {known}); call await odm.connect(...)"
        ) from None


def get_client(alias: str = DEFAULT_ALIAS) -> Any:
    """Return the driver client bound to ``alias``."""
    return get_connection(alias).client


def get_database(alias: str = DEFAULT_ALIAS) -> Any:
    """Return the driver database object bound to ``alias``."""
    return get_connection(alias).database


def connections() -> list[Connection]:
    """Return every live connection."""
    return list(_connections.values())


#: Counts the changes of the connections and of the models' bindings (``connect`` and
#: ``disconnect``): what is worked out from them (the executor's driver collections) is kept
#: as long as it stays the same, at the cost of reading one module attribute.
version = 0


def _changed() -> None:
    global version
    version += 1


def alias_for(model: type[Any]) -> str:
    """Return the alias ``model`` is bound to: ``connect(models=...)``, else its ``Meta.alias``."""
    bound = _model_aliases.get(model)
    if bound is not None:
        return bound
    meta = getattr(model, "_meta", None)
    return str(getattr(meta, "alias", DEFAULT_ALIAS))


def database_for(model: type[Any]) -> Any:
    """Return the driver database that ``model``'s collection lives in."""
    # get_database(alias_for(model)) without get_connection's call for a connected alias:
    # the executor asks this before every driver call.
    alias = alias_for(model)
    connection = _connections.get(alias)
    return connection.database if connection is not None else get_database(alias)
