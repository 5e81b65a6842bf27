"""The pytest plugin ``odm.contrib.pytest``: a real MongoDB for every test run.

Registered through the ``pytest11`` entry point, so installing the package is enough. It starts
ONE ephemeral single-node replica set per run (lazily, the first time a test needs it), or uses
the server at ``$ODM_TEST_URI``. Fixtures:

- ``odm_server``: the :class:`odm.server.LocalServer` (``None`` with ``$ODM_TEST_URI``).
- ``odm_uri``: the server's URI, session-wide.
- ``odm_driver``: the driver a test runs under; parametrized over the ``odm_drivers`` ini option
  (default ``pymongo``; list ``pymongo motor`` to run every database test under both).
- ``odm_database``: a fresh database per test, bound through ``odm.connect`` on the default
  alias, dropped and disconnected afterwards; yields the driver's database object.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from odm import connection
from odm.drivers import DRIVERS, DriverName
from odm.server import LocalServer

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
    """Register the plugin's marker."""
    config.addinivalue_line(
        "markers", "odm_drivers(*names): run this test under these drivers only"
    )


@pytest.fixture(scope="session")
def odm_server() -> Iterator[LocalServer | None]:
    """Start the run's replica set once (``None`` when ``$ODM_TEST_URI`` names a server)."""
    if os.environ.get("ODM_TEST_URI"):
        yield None
        return
    server = LocalServer()
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


if HAS_PYTEST_ASYNCIO:

    @pytest_asyncio.fixture
    async def odm_database(odm_uri: str, odm_driver: DriverName) -> AsyncIterator[Any]:
        """A fresh database bound to the default alias, dropped and disconnected afterwards."""
        name = f"odm_test_{uuid.uuid4().hex[:12]}"
        conn = await connection.connect(odm_uri, db=name, driver=odm_driver, timeout=30.0)
        try:
            yield conn.database
        finally:
            try:
                await conn.client.drop_database(name)
            finally:
                await connection.disconnect(None)

else:  # pragma: no cover

    @pytest.fixture
    def odm_database() -> None:
        """Unavailable: async fixtures need pytest-asyncio."""
        raise pytest.UsageError("odm_database needs pytest-asyncio: pip install pytest-asyncio")
