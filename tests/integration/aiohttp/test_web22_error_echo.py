"""An error answer quotes what the request sent cut short: a key, a field name or a value of a
megabyte in a body or a query string comes back as a few hundred characters, with the reason
kept. Was: a ``QueryError`` quoted a ``$``-key of the body whole, twice (a 1 MiB body answered
with 2 MiB), and a validation error the whole path of a long key."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import field_validator

import odm
from odm.contrib.aiohttp import json_body

ECHO_LIMIT = 1000
"""The most characters of a field or a message an answer holds (``errors.ECHO_LIMIT``)."""

HUGE = 300_000
"""Characters of the hostile key or value: well past what an answer may quote."""


class WbEchoItem(odm.Document):
    """A document whose map field a filter compares with the request's data."""

    name: str = ""
    data: dict[str, int] = {}

    class Meta:
        collection = "wb_echo_items"

    @field_validator("name")
    @classmethod
    def _plain(cls, value: str) -> str:
        if "<" in value:
            raise ValueError(f"{value!r} holds markup")  # echoes its input, as many do
        return value


def _routes() -> web.RouteTableDef:
    routes = web.RouteTableDef()

    @routes.post("/count")
    async def count(request: web.Request) -> web.Response:
        body = await json_body(request)
        return web.json_response(await WbEchoItem.objects.filter(data=body["data"]).count())

    @routes.get("/items")
    async def listing(request: web.Request) -> web.Response:
        return web.json_response(await WbEchoItem.objects.filter(**request.query).count())

    @routes.post("/items")
    async def create(request: web.Request) -> web.Response:
        item = await WbEchoItem.model_validate(await json_body(request)).insert()
        return web.json_response({"id": str(item.id)}, status=201)

    return routes


def _check_short(answer: dict[str, Any], text: str, *, field: str, reason: str) -> None:
    """``answer`` is a 400 naming ``field`` (cut short) and ending with ``reason``."""
    assert answer["error"] == "invalid"
    (problem,) = answer["detail"]
    assert len(text) < 4 * ECHO_LIMIT, len(text)
    assert problem["field"].startswith(field)
    assert len(problem["field"]) <= ECHO_LIMIT and len(problem["message"]) <= ECHO_LIMIT
    assert problem["message"].endswith(reason), problem["message"]
    assert "characters cut" in problem["message"] + problem["field"]


async def test_a_huge_key_of_a_filter_value_is_quoted_cut_short(make_client: Any) -> None:
    client = await make_client(_routes(), collections=("wb_echo_items",))
    response = await client.post("/count", json={"data": {"$" + "x" * HUGE: 1}})
    assert response.status == 400
    _check_short(
        await response.json(),
        await response.text(),
        field="data",
        reason="keys starting with '$' or containing '.' or NUL are refused in query and "
        "update values",
    )


async def test_a_long_field_name_from_the_query_string_is_quoted_cut_short(
    make_client: Any,
) -> None:
    client = await make_client(_routes(), collections=("wb_echo_items",))
    response = await client.get("/items", params={"data__" + "k" * 7000 + "__nope": "1"})
    assert response.status == 400
    _check_short(
        await response.json(), await response.text(), field="data__kkkk", reason="'nope'"
    )


async def test_a_validation_error_quotes_a_long_key_or_value_cut_short(
    make_client: Any, stored: Any
) -> None:
    client = await make_client(_routes(), collections=("wb_echo_items",))
    response = await client.post("/items", json={"data": {"k" * HUGE: "not a number"}})
    assert response.status == 400
    _check_short(
        await response.json(),
        await response.text(),
        field="data.kkkk",
        reason="unable to parse string as an integer",
    )
    response = await client.post("/items", json={"name": "<" * HUGE})
    assert response.status == 400
    _check_short(await response.json(), await response.text(), field="name", reason="markup")
    assert await stored("wb_echo_items") == []
