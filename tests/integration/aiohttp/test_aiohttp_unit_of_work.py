"""unit_of_work_middleware against the real replica set: what commits, what aborts."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiohttp import web

import odm
from odm.contrib.aiohttp import odm_errors_middleware, unit_of_work_middleware_factory
from odm.document import Document
from odm.session import current_session, current_unit_of_work
from tests.integration.aiohttp.raw_requests import write


async def test_exception_after_a_write_leaves_nothing_and_leaks_nothing(
    make_client: Any, stored: Any, caplog: pytest.LogCaptureFixture
) -> None:
    routes = web.RouteTableDef()

    @routes.post("/boom")
    async def boom(request: web.Request) -> web.Response:
        await write(1)
        raise RuntimeError("secret internal detail")

    client = await make_client(routes)
    with caplog.at_level(logging.ERROR, "odm.contrib.aiohttp"):
        response = await client.post("/boom")
    assert response.status == 500
    assert await response.json() == {"error": "internal", "detail": None}
    assert "secret" not in await response.text()
    assert "secret internal detail" in caplog.text, "the cause is logged for the operator"
    assert await stored() == []


async def test_returned_4xx_after_a_write_aborts_and_is_sent_as_is(
    make_client: Any, stored: Any
) -> None:
    routes = web.RouteTableDef()

    @routes.post("/refuse")
    async def refuse(request: web.Request) -> web.Response:
        await write(1)
        return web.json_response({"why": "not enough stock"}, status=422)

    client = await make_client(routes)
    response = await client.post("/refuse")
    assert response.status == 422
    assert await response.json() == {"why": "not enough stock"}
    assert await stored() == []


async def test_raised_4xx_after_a_write_aborts(make_client: Any, stored: Any) -> None:
    routes = web.RouteTableDef()

    @routes.delete("/x")
    async def bad(request: web.Request) -> web.Response:
        await write(1)
        raise web.HTTPBadRequest(text="no")

    client = await make_client(routes)
    response = await client.delete("/x")
    assert response.status == 400
    assert await stored() == []


async def test_success_commits(make_client: Any, stored: Any) -> None:
    routes = web.RouteTableDef()

    @routes.put("/x")
    async def ok(request: web.Request) -> web.Response:
        assert current_unit_of_work() is not None
        await write(1)
        await write(2)
        return web.json_response({"ok": True}, status=201)

    client = await make_client(routes)
    response = await client.put("/x")
    assert response.status == 201
    assert await stored() == [{"n": 1}, {"n": 2}]


async def test_raised_redirect_commits_then_is_sent(make_client: Any, stored: Any) -> None:
    routes = web.RouteTableDef()

    @routes.post("/orders")
    async def create(request: web.Request) -> web.Response:
        await write(7)
        raise web.HTTPFound("/orders/7")

    client = await make_client(routes)
    response = await client.post("/orders", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/orders/7"
    assert await stored() == [{"n": 7}]


@pytest.mark.odm_drivers("pymongo")
async def test_raw_driver_calls_join_the_transaction_without_session_argument(
    make_client: Any, stored: Any
) -> None:
    # PyMongo >= 4.17 binds the transaction's session to every call made in the block.
    routes = web.RouteTableDef()

    @routes.post("/x")
    async def boom(request: web.Request) -> web.Response:
        await odm.get_database()["items"].insert_one({"n": 1})
        raise RuntimeError("after the write")

    client = await make_client(routes)
    assert (await client.post("/x")).status == 500
    assert await stored() == []


async def test_safe_requests_run_without_a_transaction(make_client: Any) -> None:
    routes = web.RouteTableDef()

    @routes.get("/x")
    async def show(request: web.Request) -> web.Response:
        return web.json_response(
            {"uow": current_unit_of_work() is not None, "session": current_session() is not None}
        )

    client = await make_client(routes)
    assert await (await client.get("/x")).json() == {"uow": False, "session": False}


async def test_causal_reads_bind_a_session_to_safe_requests(make_client: Any) -> None:
    routes = web.RouteTableDef()

    @routes.get("/x")
    async def show(request: web.Request) -> web.Response:
        session = current_session()
        return web.json_response(
            {
                "uow": current_unit_of_work() is not None,
                "causal": session is not None and session.options.causal_consistency,
            }
        )

    middlewares = [odm_errors_middleware, unit_of_work_middleware_factory(causal_reads=True)]
    client = await make_client(routes, middlewares=middlewares)
    assert await (await client.get("/x")).json() == {"uow": False, "causal": True}


async def test_methods_are_configurable(make_client: Any, stored: Any) -> None:
    routes = web.RouteTableDef()

    @routes.post("/x")
    @routes.delete("/x")
    async def boom(request: web.Request) -> web.Response:
        await write(1 if request.method == "POST" else 2)
        raise RuntimeError("after the write")

    middlewares = [odm_errors_middleware, unit_of_work_middleware_factory(methods=["post"])]
    client = await make_client(routes, middlewares=middlewares)
    assert (await client.post("/x")).status == 500
    assert (await client.delete("/x")).status == 500
    # Only POST ran in a transaction; the DELETE's write was not undone.
    assert await stored() == [{"n": 2}]


async def test_cancelled_handler_aborts(make_client: Any, stored: Any) -> None:
    written = asyncio.Event()
    finished: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    async def watch(request: web.Request, handler: Any) -> web.StreamResponse:
        # Outermost: learns how the unit of work ended, after its abort ran.
        try:
            return await handler(request)
        except BaseException as exc:
            finished.set_result(exc)
            raise

    routes = web.RouteTableDef()

    @routes.post("/slow")
    async def slow(request: web.Request) -> web.Response:
        await write(1)
        written.set()
        await asyncio.sleep(30)
        return web.json_response({})

    middlewares = [web.middleware(watch), odm_errors_middleware,
                   unit_of_work_middleware_factory()]
    client = await make_client(routes, middlewares=middlewares)
    # The test server runs with handler_cancellation=True (as aiohttp's web.run_app can):
    # the client going away cancels the handler.
    request = asyncio.create_task(client.post("/slow"))
    await asyncio.wait_for(written.wait(), 10)
    request.cancel()
    outcome = await asyncio.wait_for(finished, 10)
    assert isinstance(outcome, asyncio.CancelledError)
    assert await stored() == []


async def test_concurrent_requests_commit_exactly_the_successful_ones(
    make_client: Any, stored: Any
) -> None:
    total = 200
    routes = web.RouteTableDef()

    @routes.post("/items/{n}")
    async def create(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        await write(n)
        await asyncio.sleep(0.001)  # let the other requests' transactions interleave
        await write(n, "audit")
        if n % 5 == 0:
            raise RuntimeError("fails mid-handler")
        if n % 5 == 1:
            return web.json_response({"error": "refused"}, status=409)
        return web.json_response({"n": n}, status=201)

    client = await make_client(routes, collections=("items", "audit"))
    responses = await asyncio.gather(*(client.post(f"/items/{n}") for n in range(total)))
    statuses = {n: r.status for n, r in enumerate(responses)}
    expected_ok = {n for n in range(total) if n % 5 not in (0, 1)}
    assert {n for n, s in statuses.items() if s == 201} == expected_ok
    assert {n for n, s in statuses.items() if s == 500} == {n for n in range(total) if n % 5 == 0}
    assert {n for n, s in statuses.items() if s == 409} == {n for n in range(total) if n % 5 == 1}
    for collection in ("items", "audit"):
        ns = [doc["n"] for doc in await stored(collection)]
        assert sorted(ns) == sorted(expected_ok), collection


class Note(Document):
    """An ODM document written by handlers."""

    text: str

    class Meta:
        collection = "items"


async def test_odm_documents_follow_the_request_outcome(make_client: Any, stored: Any) -> None:
    routes = web.RouteTableDef()

    @routes.post("/notes/{text}")
    async def create(request: web.Request) -> web.Response:
        text = request.match_info["text"]
        await Note(text=text).insert()
        if text == "bad":
            raise RuntimeError("after the insert")
        if text == "refused":
            return web.json_response({}, status=403)
        return web.json_response({}, status=201)

    client = await make_client(routes)
    assert (await client.post("/notes/good")).status == 201
    assert (await client.post("/notes/bad")).status == 500
    assert (await client.post("/notes/refused")).status == 403
    assert [doc["text"] for doc in await stored()] == ["good"]
