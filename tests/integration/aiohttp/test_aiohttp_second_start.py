"""An application a server serves, started by a second server, is refused with an error naming it,
and the first server keeps serving, connected: aiohttp keeps one list of entered cleanup
contexts per application, so the failed start's cleanup used to leave the first server's
contexts too (was: ``AlreadyConnected``, then the first server disconnected)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import web

import odm

COUNTED = web.RouteTableDef()


@COUNTED.get("/count")
async def count(request: web.Request) -> web.Response:
    """The number of items stored: a read through the application's connection."""
    return web.json_response(await odm.get_database()["items"].count_documents({}))


async def test_a_second_start_is_refused_and_the_first_server_keeps_serving(
    make_client: Any,
) -> None:
    client = await make_client(COUNTED)
    app = client.app
    second = web.AppRunner(app)
    with pytest.raises(odm.ConfigurationError, match=rf"{re.escape(repr(app))} is already started"):
        await second.setup()
    # What a caller's finally (or a test client's close) does after a failed start.
    with pytest.raises(odm.ConfigurationError, match="nothing was cleaned up"):
        await second.cleanup()
    response = await client.get("/count")
    assert (response.status, await response.json()) == (200, 0)
    assert odm.get_connection() is app[odm.contrib.aiohttp.ODM_CONNECTION]


# setup_odm sets app[ODM_CONNECTION] again on a restart, which aiohttp warns of (left alone).
@pytest.mark.filterwarnings("ignore:Changing state of started:DeprecationWarning")
async def test_a_stopped_application_starts_again(make_client: Any) -> None:
    client = await make_client(COUNTED)
    app = client.app
    await client.close()  # the first server stops: the application is free
    again = web.AppRunner(app)
    await again.setup()
    try:
        assert await odm.get_database()["items"].count_documents({}) == 0
    finally:
        await again.cleanup()
    with pytest.raises(odm.NotConnected):
        odm.get_connection()
