"""An error raised after the handler started its response (a prepared ``StreamResponse``): the
response is cut short and the unit of work aborted, never a second response written into the
first one's body (which read as a complete 200 holding an error page)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

import odm
from odm.session import current_session
from tests.integration.aiohttp.raw_requests import post_raw

COMMIT_REFUSED = {"errorCode": 2}  # BadValue: no error label, so no retry of the commit


async def arm_commit_failure() -> None:
    """Make the server refuse the next ``commitTransaction`` (armed outside any request)."""
    command = {
        "configureFailPoint": "failCommand",
        "mode": {"times": 1},
        "data": {"failCommands": ["commitTransaction"], **COMMIT_REFUSED},
    }
    await odm.get_client().admin.command(command)


async def disarm() -> None:
    """Switch the fail point off, whatever is left of it."""
    await odm.get_client().admin.command({"configureFailPoint": "failCommand", "mode": "off"})


def assert_cut_short(answer: bytes) -> None:
    """Fail unless ``answer`` is the started 200 alone, its chunked body never ended: no
    second response written into it, no last chunk that would make it read as complete."""
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer
    assert answer.count(b"HTTP/1.1 ") == 1, answer
    assert b"partial " in answer and not answer.endswith(b"0\r\n\r\n"), answer


def streaming_routes(after_prepare: str) -> web.RouteTableDef:
    """``POST /stream``: writes in the request's transaction, streams part of a 200, then
    raises (``after_prepare="raise"``), raises an ``HTTPException`` (``"raise_http"``) or
    returns (``"return"``)."""
    routes = web.RouteTableDef()

    @routes.post("/stream")
    async def stream(request: web.Request) -> web.StreamResponse:
        await odm.get_database()["items"].insert_one({"n": 1}, session=current_session())
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"partial ")
        if after_prepare == "raise":
            raise odm.DoesNotExist("raised after the response started")
        if after_prepare == "raise_http":
            raise web.HTTPNotFound(text="aiohttp would write this after the body")
        return response

    return routes


@pytest.mark.parametrize("after_prepare", ["raise", "raise_http"])
async def test_error_after_the_response_started_cuts_it_short(
    make_client: Any, stored: Any, after_prepare: str
) -> None:
    client = await make_client(streaming_routes(after_prepare))
    assert_cut_short(await post_raw(client, "/stream"))
    assert await stored() == [], "the unit of work was aborted"
    # The next request on the app is answered as usual.
    assert (await client.get("/nowhere")).status == 404


async def test_commit_failure_after_a_streamed_response_cuts_it_short(
    make_client: Any, stored: Any
) -> None:
    client = await make_client(streaming_routes("return"))
    await arm_commit_failure()
    try:
        assert_cut_short(await post_raw(client, "/stream"))
    finally:
        await disarm()
    assert await stored() == [], "the commit failed: nothing is written"
