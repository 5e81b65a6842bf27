"""The pytest plugin ``odm.contrib.pytest``: a real MongoDB for every test run.

Registered through the ``pytest11`` entry point, so installing the package is enough. It starts
ONE ephemeral single-node replica set per run (lazily, the first time a test needs it), its
data in ``$TMPDIR`` if set, else in memory where the machine has a ``/dev/shm`` with room
(:func:`odm.server.memory_temp_dir`); or it uses the server at ``$ODM_TEST_URI``. Fixtures:

- ``odm_server``: the :class:`odm.server.LocalServer` (``None`` with ``$ODM_TEST_URI``).
- ``odm_uri``: the server's URI, session-wide.
- ``odm_queries``: the commands that any client sends during the test, with Django-style
  query assertions (:mod:`odm.contrib.pytest.queries`): ``assert_num_queries(n)`` and
  ``assert_no_collection_scans()``.
- ``odm_driver``: the driver a test runs under; parametrized over the ``odm_drivers`` ini option
  (default ``pymongo``; list ``pymongo motor`` to run every database test under both).
- ``odm_database``: a fresh database per test, bound through ``odm.connect`` on the default
  alias, dropped and disconnected afterwards; yields the driver's database object.
- ``odm_database_uri``: the URI of a fresh database (its name in the URI's path), bound to
  nothing, dropped afterwards: for an application under test that connects itself, such as an
  aiohttp app calling ``setup_odm(app, uri)``.
- ``odm_monitored``: the same as ``odm_database``, through a client that records every command
  it sends (:class:`CommandLog`), so that a test can assert the exact commands an operation
  sent, as SQLAlchemy's tests assert the statements: ``odm_monitored.log.named("update")``.

After a test that used one of the three database fixtures, before its database is dropped,
the plugin turns off the fail points the test left armed and ends, with a warning, the
transactions it left open (:mod:`odm.contrib.pytest.leftovers`), so that the next test starts
clean and the drop does not wait for the server to give up on them.

With pytest-xdist, each worker process is a run of its own and starts its own server, so that
a test's server-wide settings (a ``failCommand`` fail point, a profiling level) never reach
another worker's tests. ``-n auto`` takes one worker per available CPU, at most
:data:`MAX_AUTO_WORKERS`, and none (the tests run in the main process) when
``$ODM_TEST_URI`` names one server that every worker would share;
``$PYTEST_XDIST_AUTO_NUM_WORKERS`` overrides both. An explicit ``-n N`` is obeyed.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo.errors import PyMongoError

from odm import connection
from odm.drivers import DRIVERS, DriverName, close_client, create_client
from odm.server import LocalServer, memory_temp_dir

from .leftovers import Leftovers
from .log import HOUSEKEEPING, CommandLog
from .queries import (
    Queries,
    assert_no_collection_scans,
    assert_num_queries,
    capture_queries,
    install,
    listening,
)

__all__ = [
    "HOUSEKEEPING",
    "CommandLog",
    "Leftovers",
    "MonitoredDatabase",
    "Queries",
    "assert_no_collection_scans",
    "assert_num_queries",
    "capture_queries",
    "database_uri",
]

#: The most workers that ``-n auto`` starts: each runs a ``mongod`` of its own, whose memory
#: and start-up stop paying off beyond a few.
MAX_AUTO_WORKERS = 4

try:
    import pytest_asyncio

    HAS_PYTEST_ASYNCIO = True
except ImportError:  # pragma: no cover - the plugin must not break suites without it
    HAS_PYTEST_ASYNCIO = False


def pytest_addoption(parser: pytest.Parser) -> None:
    """Declare the plugin's ini options."""
    parser.addini(
        "odm_drivers",
        help="drivers that odm_database tests run under: pymongo, motor (space separated)",
        default="pymongo",
    )


# tryfirst: pytest-xdist's own implementation answers too, and the first answer is taken.
@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """How many workers ``-n auto`` starts (pytest-xdist's hook; see the module's docstring)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own reading of the variable
    if os.environ.get("ODM_TEST_URI"):
        return 0
    return max(1, min(_available_cpus(), MAX_AUTO_WORKERS))


def _available_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on macOS or Windows
        return os.cpu_count() or 1


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that uses ``odm_driver`` (so ``odm_database``) once per configured driver."""
    if "odm_driver" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("odm_drivers")
    if marker is not None:
        names = list(marker.args)
    else:
        names = str(metafunc.config.getini("odm_drivers")).split()
    unknown = [n for n in names if n not in DRIVERS]
    if unknown:
        raise pytest.UsageError(f"odm_drivers: unknown driver(s) {unknown}; use {DRIVERS}")
    metafunc.parametrize("odm_driver", names, indirect=True, scope="function")


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin's marker and its command listener (before any client exists)."""
    install()
    config.addinivalue_line(
        "markers", "odm_drivers(*names): run this test under these drivers only"
    )


def _data_parent() -> Path | None:
    """Where the run's server keeps its data: the temporary directory a user named
    (``$TMPDIR``), else memory where the machine has room, else the system's temporary
    directory (``None``). Memory, because each test database's creation and drop wait for the
    journal's flushes, which on disk cost more than most tests' own work."""
    if os.environ.get("TMPDIR"):
        return None
    return memory_temp_dir()


@pytest.fixture(scope="session")
def odm_server() -> Iterator[LocalServer | None]:
    """Start the run's replica set once (``None`` when ``$ODM_TEST_URI`` names a server).

    Its majority writes are acknowledged without waiting for the journal
    (``LocalServer(journaled_majority=False)``): what a test sees of each write is the same,
    and the data goes with the server at the end of the run."""
    if os.environ.get("ODM_TEST_URI"):
        yield None
        return
    # Thrown away at the end of the run: majority writes need not wait for journal flushes.
    server = LocalServer(temp_dir=_data_parent(), journaled_majority=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def odm_uri(odm_server: LocalServer | None) -> str:
    """The URI of the test server (no database name in it)."""
    if odm_server is None:
        return os.environ["ODM_TEST_URI"]
    return odm_server.uri


@pytest.fixture
def odm_driver(request: pytest.FixtureRequest) -> DriverName:
    """The driver this test runs under (``pymongo`` unless parametrized)."""
    driver: DriverName = getattr(request, "param", "pymongo")
    return driver


@dataclass
class MonitoredDatabase:
    """What ``odm_monitored`` yields: the driver's database and the log of its client."""

    database: Any
    log: CommandLog


def _fresh_name() -> str:
    return f"odm_test_{uuid.uuid4().hex[:12]}"


async def _clean_up(leftovers: Leftovers, client: Any) -> None:
    """Turn off what the test left armed and end what it left open (before its database is
    dropped: the drop would wait for an open transaction), warning about the latter."""
    try:
        problems = await leftovers.clean_up(client)
    except PyMongoError as exc:  # a server that refuses killSessions, say: the drop still runs
        problems = [f"could not clean up what the test left on the server: {exc}"]
    for problem in problems:
        warnings.warn(pytest.PytestWarning(problem), stacklevel=1)


def database_uri(uri: str, database: str) -> str:
    """``uri`` with ``database`` as its default database (replacing any), options kept.

    ``database_uri("mongodb://h:1/?replicaSet=rs0", "shop")`` is
    ``"mongodb://h:1/shop?replicaSet=rs0"``.
    """
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise ValueError(f"not a MongoDB URI: {connection.redact_uri(uri)!r}")
    # The host list ends at the first "/" or "?" (neither can appear unescaped before it).
    end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    hosts, tail = rest[:end], rest[end:]
    _, qmark, options = tail.partition("?")
    return f"{scheme}://{hosts}/{database}{qmark}{options}"


@pytest.fixture
def odm_queries() -> Iterator[Queries]:
    """The commands every client sends during the test: ``.log``, ``.assert_num_queries(n)``
    (a context manager) and ``await .assert_no_collection_scans()``."""
    with capture_queries() as log:
        yield Queries(log)


if HAS_PYTEST_ASYNCIO:

    @pytest_asyncio.fixture
    async def odm_database(odm_uri: str, odm_driver: DriverName) -> AsyncIterator[Any]:
        """A fresh database bound to the default alias, dropped and disconnected afterwards."""
        name = _fresh_name()
        conn = await connection.open_connection(odm_uri, db=name, driver=odm_driver, timeout=30.0)
        leftovers = Leftovers()
        try:
            with listening(leftovers):
                yield conn.database
        finally:
            try:
                await _clean_up(leftovers, conn.client)
                await conn.client.drop_database(name)
            finally:
                await connection.disconnect(None)

    @pytest_asyncio.fixture
    async def odm_database_uri(odm_uri: str) -> AsyncIterator[str]:
        """The URI of a fresh database for an application that connects itself; dropped after.

        Nothing is bound: the application under test calls ``odm.connect`` or ``setup_odm``
        with this URI, as it would in production, so that it is tested as it runs.
        """
        name = _fresh_name()
        leftovers = Leftovers()
        try:
            with listening(leftovers):
                yield database_uri(odm_uri, name)
        finally:
            # A client of its own: the application's may be closed (or never opened) by now.
            client = create_client(odm_uri, "pymongo")
            try:
                await _clean_up(leftovers, client)
                await client.drop_database(name)
            finally:
                await close_client(client)

    @pytest_asyncio.fixture
    async def odm_monitored(
        odm_uri: str, odm_driver: DriverName
    ) -> AsyncIterator[MonitoredDatabase]:
        """A fresh database bound to the default alias through a client that logs commands."""
        log = CommandLog()
        client = create_client(
            odm_uri, odm_driver, event_listeners=[log], tz_aware=True,
            uuidRepresentation="standard",
        )
        name = _fresh_name()
        conn = await connection.open_connection(client=client, db=name, timeout=30.0)
        log.clear()
        leftovers = Leftovers()
        try:
            with listening(leftovers):
                yield MonitoredDatabase(conn.database, log)
        finally:
            try:
                await _clean_up(leftovers, client)
                await client.drop_database(name)
            finally:
                await connection.disconnect(None)
                await close_client(client)

else:  # pragma: no cover

    @pytest.fixture
    def odm_database() -> None:
        """Unavailable: async fixtures need pytest-asyncio."""
        raise pytest.UsageError("odm_database needs pytest-asyncio: pip install pytest-asyncio")
