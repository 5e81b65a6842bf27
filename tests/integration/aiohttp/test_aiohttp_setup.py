"""setup_odm: connect on startup with logged retries, fail cleanly, disconnect on shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import odm
from odm.contrib.aiohttp import ODM_CONNECTION, ODM_CONNECTIONS, setup_odm
from odm.document import Document
from odm.drivers import DriverName
from odm.models.fields import Indexed
from odm.server import free_port
from odm.session import current_session


async def test_connects_on_startup_and_disconnects_on_shutdown(
    odm_uri: str, odm_driver: DriverName
) -> None:
    app = web.Application()
    setup_odm(app, odm_uri, db="odm_aiohttp_setup", driver=odm_driver, ensure_indexes=False)
    with pytest.raises(odm.NotConnected):
        odm.get_connection()  # nothing happens before the app starts
    async with TestClient(TestServer(app)):
        connection = app[ODM_CONNECTION]
        assert connection is odm.get_connection()
        assert app[ODM_CONNECTIONS] == {"default": connection}
        assert connection.driver == odm_driver
        assert connection.database.name == "odm_aiohttp_setup"
    with pytest.raises(odm.NotConnected):
        odm.get_connection()
    assert app[ODM_CONNECTIONS] == {}


async def test_other_alias(odm_uri: str) -> None:
    app = web.Application()
    setup_odm(app, odm_uri, db="odm_aiohttp_reports", alias="reports", ensure_indexes=False)
    async with TestClient(TestServer(app)):
        assert ODM_CONNECTION not in app
        assert app[ODM_CONNECTIONS]["reports"] is odm.get_connection("reports")
    with pytest.raises(odm.NotConnected):
        odm.get_connection("reports")


async def test_dead_address_fails_startup_within_the_timeout_logging_each_attempt(
    odm_driver: DriverName, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    app = web.Application()
    setup_odm(
        app,
        f"mongodb://user:pw@127.0.0.1:{port}/shop",
        driver=odm_driver,
        retry=odm.Retry(attempts=3, backoff=0.05),
        timeout=1.5,
    )
    server = TestServer(app)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, "odm.contrib.aiohttp"), pytest.raises(
        odm.ConnectionFailed
    ) as info:
        await server.start_server()
    elapsed = time.monotonic() - started
    await server.close()
    assert elapsed < 1.5 + 0.5, f"startup took {elapsed:.2f} s past its 1.5 s timeout"
    assert f"127.0.0.1:{port}" in str(info.value)
    attempts = [r for r in caplog.records if "not reachable" in r.getMessage()]
    assert 2 <= len(attempts) <= 3, caplog.text
    assert all(r.levelno == logging.WARNING for r in attempts)
    assert "attempt 1 of 3" in attempts[0].getMessage()
    assert f"127.0.0.1:{port}" in attempts[0].getMessage()
    assert "startup failed" in caplog.text
    assert "user:pw" not in caplog.text, "the password never reaches the log"
    with pytest.raises(odm.NotConnected):
        odm.get_connection()


async def test_shutdown_waits_for_in_flight_requests_before_closing(
    odm_uri: str, odm_driver: DriverName
) -> None:
    from odm.contrib.aiohttp import odm_errors_middleware, unit_of_work_middleware

    started = asyncio.Event()
    app = web.Application(middlewares=[odm_errors_middleware, unit_of_work_middleware])
    routes = web.RouteTableDef()

    @routes.post("/slow")
    async def slow(request: web.Request) -> web.Response:
        started.set()
        await asyncio.sleep(0.3)
        await odm.get_database()["items"].insert_one({"late": True}, session=current_session())
        return web.json_response({}, status=201)

    app.add_routes(routes)
    name = "odm_aiohttp_shutdown"
    setup_odm(app, odm_uri, db=name, driver=odm_driver, ensure_indexes=False)
    server = TestServer(app)
    client = TestClient(server)
    await client.start_server()
    await odm.get_database()["items"].delete_many({})
    request = asyncio.create_task(client.post("/slow"))
    await started.wait()
    # Stop the runner while the handler is in flight: aiohttp waits for it, then cleans up.
    assert server.runner is not None
    await server.runner.cleanup()
    response = await request
    assert response.status == 201
    await client.close()
    check = await odm.connect(odm_uri, db=name, alias="check")
    try:
        assert await check.database["items"].count_documents({}) == 1
        await check.client.drop_database(name)
    finally:
        await odm.disconnect("check")


class Member(Document):
    """A document with a unique index, for the index check at startup."""

    email: Annotated[str, Indexed(unique=True)]

    class Meta:
        collection = "aiohttp_setup_members"


async def test_startup_ensures_the_declared_indexes(odm_uri: str, odm_driver: DriverName) -> None:
    app = web.Application()
    name = "odm_aiohttp_indexes"
    setup_odm(app, odm_uri, db=name, driver=odm_driver, models=[Member])
    async with TestClient(TestServer(app)):
        try:
            indexes = await odm.get_database()["aiohttp_setup_members"].index_information()
            assert any(
                info["key"] == [("email", 1)] and info.get("unique") for info in indexes.values()
            ), indexes
        finally:
            await odm.get_client().drop_database(name)
