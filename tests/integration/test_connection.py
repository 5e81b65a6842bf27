"""connect/disconnect against the real server, under both drivers."""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

import odm
from odm.drivers import DriverName
from odm.server import LocalServer, free_port


@pytest.fixture
async def clean_aliases() -> AsyncIterator[None]:
    yield
    await odm.disconnect(None)


async def test_connect_binds_client_and_database(
    odm_uri: str, odm_driver: DriverName, clean_aliases: None
) -> None:
    conn = await odm.connect(odm_uri, db="odm_conn_ok", driver=odm_driver)
    assert odm.get_client() is conn.client
    assert odm.get_database().name == "odm_conn_ok"
    assert conn.driver == odm_driver
    expected = "motor" if odm_driver == "motor" else "pymongo"
    assert type(conn.client).__module__.split(".")[0] == expected
    assert (await odm.get_database().command("ping"))["ok"] == 1


async def test_database_name_from_the_uri(odm_uri: str, clean_aliases: None) -> None:
    uri = odm_uri.replace("/?", "/from_uri?")
    await odm.connect(uri)
    assert odm.get_database().name == "from_uri"


async def test_dead_port_fails_within_timeout_naming_the_address(
    odm_driver: DriverName, clean_aliases: None
) -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(odm.ConnectionFailed) as info:
        await odm.connect(
            f"mongodb://127.0.0.1:{port}/x",
            driver=odm_driver,
            retry=odm.Retry(attempts=3, backoff=0.1),
            timeout=2.0,
        )
    elapsed = time.monotonic() - started
    assert elapsed < 2.0 + 0.5, f"connect took {elapsed:.2f}s past its 2 s timeout"
    assert f"127.0.0.1:{port}" in str(info.value)
    assert info.value.attempts >= 2
    with pytest.raises(odm.NotConnected):
        odm.get_client()


async def test_server_starting_late_is_reached_by_the_retries(clean_aliases: None) -> None:
    port = free_port()
    server = LocalServer(port=port, replica_set=None)

    async def start_late() -> None:
        await asyncio.sleep(1.5)
        # In the loop's executor, whose thread outlives the test: a member dies with the
        # thread that started it (PR_SET_PDEATHSIG), and a thread of its own (a Timer, as
        # before) ended as soon as start() returned, killing the server under the test's
        # ping (seen in CI as a connection reset, or as no answer within the 30 s).
        await asyncio.to_thread(server.start)

    starter = asyncio.create_task(start_late())
    try:
        conn = await odm.connect(
            f"mongodb://127.0.0.1:{port}/late?directConnection=true",
            retry=odm.Retry(attempts=20, backoff=0.2, max_backoff=1.0),
            timeout=30.0,
        )
        assert (await conn.database.command("ping"))["ok"] == 1
    finally:
        await starter
        await odm.disconnect()
        await asyncio.to_thread(server.stop)


async def test_double_connect_is_an_error_that_says_so(
    odm_uri: str, clean_aliases: None
) -> None:
    await odm.connect(odm_uri, db="one")
    with pytest.raises(odm.AlreadyConnected, match="'default' is already connected"):
        await odm.connect(odm_uri, db="two")
    assert odm.get_database().name == "one"


async def test_aliases_route_to_their_own_databases(
    odm_uri: str, odm_driver: DriverName, clean_aliases: None
) -> None:
    class Report:
        class _meta:
            alias = "analytics"

    class Unbound:
        pass

    await odm.connect(odm_uri, db="main_db", driver=odm_driver, models=[Unbound])
    await odm.connect(odm_uri, db="stats_db", alias="analytics", driver=odm_driver)
    assert odm.get_database("analytics").name == "stats_db"
    assert odm.connection.database_for(Report).name == "stats_db"
    assert odm.connection.database_for(Unbound).name == "main_db"
    await odm.get_database("analytics").hits.insert_one({"n": 1})
    assert await odm.get_database().hits.count_documents({}) == 0
    await odm.get_client().drop_database("stats_db")
    await odm.disconnect("analytics")
    with pytest.raises(odm.NotConnected, match="'analytics' is not connected"):
        odm.get_database("analytics")
    assert odm.get_database().name == "main_db"


async def test_ready_client_is_reused_and_not_closed(odm_uri: str, clean_aliases: None) -> None:
    from motor.motor_asyncio import AsyncIOMotorClient

    client: Any = AsyncIOMotorClient(odm_uri)
    await odm.connect(client=client, db="given")
    assert odm.get_client() is client
    assert odm.get_connection().driver == "motor"
    await odm.disconnect()
    assert (await client.given.command("ping"))["ok"] == 1
    client.close()


async def test_operation_timeout_becomes_odm_error(odm_database: Any) -> None:
    """A command blocked past its deadline raises OperationTimeout (CSOT, both drivers)."""
    await odm_database.items.insert_one({"n": 1})
    admin = odm.get_client().admin
    await admin.command({
        "configureFailPoint": "failCommand",
        "mode": {"times": 1},
        "data": {"failCommands": ["find"], "blockConnection": True, "blockTimeMS": 1500},
    })
    try:
        with (
            pytest.raises(odm.OperationTimeout, match=r"find did not finish within 0\.3 s"),
            odm.operation_timeout(0.3, "find"),
        ):
            await odm_database.items.find_one({})
    finally:
        await admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    with odm.operation_timeout(5.0):
        assert (await odm_database.items.find_one({}))["n"] == 1
