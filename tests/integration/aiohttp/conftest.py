"""Fixtures for the aiohttp integration: an app wired to a fresh database on the real server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiohttp.typedefs import Middleware

import odm
from odm.contrib.aiohttp import odm_errors_middleware, setup_odm, unit_of_work_middleware
from odm.drivers import DriverName

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]
Routes = Callable[[web.RouteTableDef], None]


def fresh_name() -> str:
    """A database name no other test uses."""
    return f"odm_aiohttp_{uuid.uuid4().hex[:12]}"


def drop_database_on_shutdown(app: web.Application, name: str) -> None:
    """Drop ``name`` when the app stops, before setup_odm's context disconnects.

    Registered after setup_odm, so aiohttp leaves this context first (contexts unwind in
    reverse) while the connection is still open.
    """

    async def drop(app: web.Application) -> AsyncIterator[None]:
        yield
        await odm.get_client().drop_database(name)

    app.cleanup_ctx.append(drop)


@pytest.fixture
def drop_on_shutdown() -> Callable[[web.Application, str], None]:
    """:func:`drop_database_on_shutdown`, for test modules (they cannot import conftest)."""
    return drop_database_on_shutdown


@pytest.fixture
def make_client(
    aiohttp_client: Any, odm_uri: str, odm_driver: DriverName
) -> ClientFactory:
    """Build an app on a fresh database from route declarations and return its test client."""

    async def build(
        routes: web.RouteTableDef,
        *,
        middlewares: list[Middleware] | None = None,
        collections: tuple[str, ...] = ("items",),
    ) -> TestClient[web.Request, web.Application]:
        name = fresh_name()
        app = web.Application(
            middlewares=middlewares
            if middlewares is not None
            else [odm_errors_middleware, unit_of_work_middleware]
        )
        app.add_routes(routes)
        # No index is ensured at startup: no app built here declares one (a test that needs
        # a unique index makes it), while the models bound by default are every model the
        # run has imported (384 from all the test modules): listing their 344 collections'
        # indexes and creating 47 cost ~0.7 s of CPU per test. The startup's index check is
        # tested in test_aiohttp_setup.py, with the models it binds.
        setup_odm(app, odm_uri, db=name, driver=odm_driver, timeout=30.0, ensure_indexes=False)

        async def create_collections(app: web.Application) -> AsyncIterator[None]:
            # Created up front: many transactions creating one collection at once conflict.
            for collection in collections:
                await odm.get_database().create_collection(collection)
            yield

        app.cleanup_ctx.append(create_collections)
        drop_database_on_shutdown(app, name)
        client: TestClient[web.Request, web.Application] = await aiohttp_client(app)
        return client

    return build


Stored = Callable[..., Awaitable[list[dict[str, Any]]]]


@pytest.fixture
def stored() -> Stored:
    """Read a collection of the running app's database, outside any transaction."""

    async def read(collection: str = "items") -> list[dict[str, Any]]:
        return [doc async for doc in odm.get_database()[collection].find({}, {"_id": 0})]

    return read
