"""The request's unit of work against a hostile client: a redirect raised after the response
started, a client that goes away mid-request or mid-commit, a task that outlives the request."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

import odm
from odm.contrib.aiohttp import odm_errors_middleware, unit_of_work_middleware_factory
from tests.integration.aiohttp.raw_requests import post_raw, write

COMMIT_BLOCK_MS = 800
"""How long the server holds the commit of the request whose client then goes away."""


async def test_a_redirect_raised_after_the_response_started_aborts(
    make_client: Any, stored: Any
) -> None:
    routes = web.RouteTableDef()

    @routes.post("/stream")
    async def stream(request: web.Request) -> web.StreamResponse:
        await write(1)
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"partial ")
        raise web.HTTPFound("/elsewhere")  # cannot be sent: the 200 has started

    client = await make_client(routes)
    answer = await post_raw(client, "/stream")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"partial " in answer, answer
    assert not answer.endswith(b"0\r\n\r\n"), "the client sees the response cut short"
    assert await stored() == [], "a response cut short is a failure: nothing is kept"


def outcome_watcher() -> tuple[Callable[..., Awaitable[web.StreamResponse]], asyncio.Future[Any]]:
    """An outermost middleware and the future it sets to how the request ended (its exception,
    or None), once the unit of work finished ending."""
    finished: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    @web.middleware
    async def watch(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response = await handler(request)
        except BaseException as exc:
            finished.set_result(exc)
            raise
        finished.set_result(None)
        return response

    return watch, finished


async def disconnect_during(
    make_client: Any,
    routes: web.RouteTableDef,
    reached: asyncio.Event,
    delay: float = 0.0,
    arm: Callable[[], Awaitable[None]] | None = None,
) -> Any:
    """Start the app, ``arm()`` (once connected), send ``POST /slow``, go away ``delay`` seconds
    after ``reached`` is set, and return how the server's handling of the request ended."""
    watch, finished = outcome_watcher()
    middlewares = [watch, odm_errors_middleware, unit_of_work_middleware_factory()]
    client = await make_client(routes, middlewares=middlewares)
    if arm is not None:
        await arm()
    # The test server runs with handler_cancellation=True: the client going away cancels.
    request = asyncio.create_task(client.post("/slow"))
    await asyncio.wait_for(reached.wait(), 10)
    await asyncio.sleep(delay)
    request.cancel()
    return await asyncio.wait_for(finished, 10)


async def test_a_client_gone_mid_request_is_logged_as_aborted(
    make_client: Any, stored: Any, caplog: pytest.LogCaptureFixture
) -> None:
    written = asyncio.Event()
    routes = web.RouteTableDef()

    @routes.post("/slow")
    async def slow(request: web.Request) -> web.Response:
        await write(1)
        written.set()
        await asyncio.sleep(30)
        return web.json_response({})

    with caplog.at_level(logging.INFO, "odm.contrib.aiohttp"):
        outcome = await disconnect_during(make_client, routes, written)
    assert isinstance(outcome, asyncio.CancelledError)
    assert await stored() == []
    assert (
        "POST /slow: cancelled (the client went away, or the server is stopping) and its "
        "transaction aborted: nothing it wrote is kept" in caplog.text
    )


async def block_next_commit() -> None:
    """Make the server hold the next ``commitTransaction`` for :data:`COMMIT_BLOCK_MS`."""
    await odm.get_client().admin.command(
        {
            "configureFailPoint": "failCommand",
            "mode": {"times": 1},
            "data": {
                "failCommands": ["commitTransaction"],
                "blockConnection": True,
                "blockTimeMS": COMMIT_BLOCK_MS,
            },
        }
    )


async def test_a_client_gone_mid_commit_is_logged_as_kept(
    make_client: Any, stored: Any, caplog: pytest.LogCaptureFixture
) -> None:
    returning = asyncio.Event()
    routes = web.RouteTableDef()

    @routes.post("/slow")
    async def slow(request: web.Request) -> web.Response:
        await write(1)
        returning.set()  # the middleware commits next
        return web.json_response({})

    try:
        with caplog.at_level(logging.INFO, "odm.contrib.aiohttp"):
            outcome = await disconnect_during(
                make_client, routes, returning, delay=0.2, arm=block_next_commit
            )
    finally:
        await odm.get_client().admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    assert isinstance(outcome, asyncio.CancelledError), "cancelled while the commit was held"
    assert await stored() == [{"n": 1}], "the commit, once sent, was finished"
    assert "POST /slow: cancelled" in caplog.text
    assert "after its transaction committed: its writes are kept" in caplog.text
    assert "aborted" not in caplog.text


async def test_a_task_that_outlives_the_request_writes_on_its_own(
    make_client: Any, stored: Any
) -> None:
    """As docs/aiohttp.md says: a shielded task is not part of the request's transaction."""
    waiting = asyncio.Event()
    late: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def charge() -> None:
        waiting.set()
        await asyncio.sleep(0.3)  # the client goes away meanwhile
        await write(2)
        late.set_result("written")

    routes = web.RouteTableDef()

    @routes.post("/slow")
    async def slow(request: web.Request) -> web.Response:
        await write(1)
        await asyncio.shield(charge())
        return web.json_response({})

    outcome = await disconnect_during(make_client, routes, waiting)
    assert isinstance(outcome, asyncio.CancelledError)
    assert await asyncio.wait_for(late, 10) == "written"
    assert await stored() == [{"n": 2}], "the request's write aborted, the task's own kept"
