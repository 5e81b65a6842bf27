"""``json_body`` refuses what ``json.loads`` takes but is not JSON, or not one meaning (NaN and
Infinity, a key twice), and bodies a page on another site can make a browser send (a form,
text, no Content-Type: cross-site request forgery); ``json_dumps`` writes no NaN either."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

import odm
from odm.contrib.aiohttp import json_body, json_dumps
from odm.session import current_session

JSON = {"Content-Type": "application/json"}


def echo_routes() -> web.RouteTableDef:
    """``POST /echo``: writes the body in the request's transaction, then answers it."""
    routes = web.RouteTableDef()

    @routes.post("/echo")
    async def echo(request: web.Request) -> web.Response:
        body = await json_body(request)
        await odm.get_database()["items"].insert_one({"body": body}, session=current_session())
        return web.Response(text=json_dumps(body), content_type="application/json")

    return routes


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"price": NaN}', "NaN is not a JSON value"),
        (b'{"a": [1, {"b": Infinity}]}', "Infinity is not a JSON value"),
        (b"-Infinity", "-Infinity is not a JSON value"),
        (b'{"amount": 1, "amount": 1000000}', 'an object holds the key "amount" twice'),
        (b'{"a": {"b": 1, "c": 2, "b": 3}}', 'an object holds the key "b" twice'),
    ],
    ids=["nan", "nested-infinity", "top-level", "duplicate-key", "nested-duplicate-key"],
)
async def test_not_json_or_ambiguous_is_400(
    make_client: Any, stored: Any, body: bytes, message: str
) -> None:
    client = await make_client(echo_routes())
    response = await client.post("/echo", data=body, headers=JSON)
    assert response.status == 400
    assert await response.json() == {
        "error": "invalid",
        "detail": f"the request body is not valid JSON: {message}",
    }
    assert await stored() == []


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded",
     "multipart/form-data; boundary=x", None],
)
async def test_a_body_a_cross_site_page_can_send_is_415(
    make_client: Any, stored: Any, content_type: str | None
) -> None:
    client = await make_client(echo_routes())
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post(
        "/echo", data=b'{"amount": 1}', headers=headers, skip_auto_headers=["Content-Type"]
    )
    assert response.status == 415
    assert response.content_type == "application/json"
    assert await response.json() == {
        "error": "unsupported_media_type",
        "detail": "send the body as JSON, with the header Content-Type: application/json",
    }
    assert await stored() == [], "the handler went no further"


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "application/merge-patch+json",
     "application/octet-stream"],
)
async def test_json_and_other_types_are_read(make_client: Any, content_type: str) -> None:
    client = await make_client(echo_routes())
    response = await client.post(
        "/echo", data=b'{"amount": 1}', headers={"Content-Type": content_type}
    )
    assert (response.status, await response.json()) == (200, {"amount": 1})


def test_json_dumps_writes_nan_and_infinity_as_null() -> None:
    data = {"x": float("nan"), "y": [float("inf"), -float("inf"), 1.5], "z": {"w": 2}}
    assert json_dumps(data) == '{"x": null, "y": [null, null, 1.5], "z": {"w": 2}}'
