"""Through a real app: an application's own errors built from what the request sent (a
``DoesNotExist`` naming the name a ``get()`` missed, a ``QueryError`` naming a field name the
request chose) and a validation error of a huge list come back short, valid JSON, markup
escaped. They used to echo the whole input (a 300 KB name: a 300 KB answer)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

import odm
from odm.contrib.aiohttp import json_body

#: The most bytes an error answer may take.
ANSWER_BYTES = 4 * 1024
HUGE = "</script>\x00é" * 30_000


class BkNamed(odm.Document):
    name: str
    scores: list[int] = []

    class Meta:
        collection = "bk23_named"


def _routes() -> web.RouteTableDef:
    routes = web.RouteTableDef()

    @routes.post("/find")
    async def find(request: web.Request) -> web.Response:
        name = (await json_body(request))["name"]
        try:
            found = await BkNamed.objects.get(name=name)
        except BkNamed.DoesNotExist:
            raise odm.DoesNotExist(f"no item named {name!r}") from None
        return web.json_response(found.name)

    @routes.post("/sorted")
    async def ordered(request: web.Request) -> web.Response:
        field = (await json_body(request))["field"]
        return web.json_response(len(await BkNamed.objects.order_by(field)))

    @routes.post("/create")
    async def create(request: web.Request) -> web.Response:
        await BkNamed.model_validate(await json_body(request)).insert()
        return web.json_response("ok", status=201)

    return routes


async def _answer(response: Any, status: int) -> Any:
    assert response.status == status
    body = await response.read()
    assert len(body) <= ANSWER_BYTES, len(body)
    assert b"<" not in body
    return json.loads(body)


async def test_answers_quoting_the_request_are_short(make_client: Any, stored: Any) -> None:
    client = await make_client(_routes(), collections=("bk23_named",))
    missed = await _answer(await client.post("/find", json={"name": HUGE}), 404)
    assert missed["detail"].startswith("no item named '</script>") and "characters cut" in (
        missed["detail"]
    )
    refused = await _answer(await client.post("/sorted", json={"field": HUGE}), 400)
    (problem,) = refused["detail"]
    assert "characters cut" in problem["message"]
    invalid = await _answer(
        await client.post("/create", json={"name": HUGE, "scores": ["<x>"] * 500}), 400
    )
    assert len(invalid["detail"]) == 11 and invalid["detail"][-1]["type"] == "too_many"
    assert await stored("bk23_named") == []
