"""``json_body`` against bodies aiohttp itself cannot read: a 400, never a 500."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
from aiohttp import web

from odm.contrib.aiohttp import json_body, json_response, odm_errors_middleware


@pytest.fixture
async def echo_client(aiohttp_client: Any) -> Any:
    """A client of an app whose ``POST /echo`` answers the JSON body it read."""
    routes = web.RouteTableDef()

    @routes.post("/echo")
    async def echo(request: web.Request) -> web.Response:
        return json_response(await json_body(request))

    app = web.Application(middlewares=[odm_errors_middleware])
    app.add_routes(routes)
    return await aiohttp_client(app)


async def test_a_body_not_valid_in_its_content_encoding_is_400(
    echo_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    response = await echo_client.post("/echo", data=b'{"not": "gzip"}', headers=headers)
    assert response.status == 400
    assert await response.json() == {
        "error": "invalid",
        "detail": "the request body is not valid JSON: the body is not valid in the "
        "Content-Encoding it names",
    }
    assert "unhandled exception" not in caplog.text, "the client's fault, not a bug"


async def test_a_gzipped_body_is_read(echo_client: Any) -> None:
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    response = await echo_client.post("/echo", data=gzip.compress(b'{"a": 1}'), headers=headers)
    assert (response.status, await response.json()) == (200, {"a": 1})
