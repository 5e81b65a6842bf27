"""What error answers and log lines must not carry: the filter of a lookup (values the server
added to it), the verdict of the client on data the server stored, forged log lines."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp import web
from pydantic import Field

import odm
from odm.contrib.aiohttp import json_response


class Secret(odm.Document):
    """A document looked up with conditions the client never sent."""

    name: str
    owner: str = ""
    token_hash: str = ""

    class Meta:
        collection = "leak_secrets"


async def test_a_models_404_names_the_model_not_the_filter(make_client: Any) -> None:
    routes = web.RouteTableDef()

    @routes.get("/secrets/{name}")
    async def show(request: web.Request) -> web.Response:
        found = await Secret.objects.get(
            odm.Q(owner="bob@example.org"),
            name=request.match_info["name"],
            token_hash="9f86d081884c7d65",
        )
        return json_response(found)

    @routes.get("/by-id/{id}")
    async def by_id(request: web.Request) -> web.Response:
        return json_response(await Secret.objects.get(id=request.match_info["id"]))

    client = await make_client(routes, collections=("leak_secrets",))
    for path in ("/secrets/mine", "/by-id/65a000000000000000000000"):
        response = await client.get(path)
        assert response.status == 404
        answer = await response.json()
        assert answer == {"error": "not_found", "detail": "no Secret matches the request"}
        text = await response.text()
        for leaked in ("bob@example.org", "9f86d081884c7d65", "Q:", "ObjectId("):
            assert leaked not in text, (leaked, text)


async def test_a_stored_document_that_does_not_fit_is_a_500_not_the_clients_400(
    make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    routes = web.RouteTableDef()

    @routes.get("/secrets")
    async def listing(request: web.Request) -> web.Response:
        return json_response(await Secret.objects.all())

    client = await make_client(routes, collections=("leak_secrets",))
    await odm.get_database()["leak_secrets"].insert_one({"name": 5, "token_hash": "stored"})
    with caplog.at_level(logging.ERROR, "odm.contrib.aiohttp"):
        response = await client.get("/secrets")
    assert response.status == 500
    assert await response.json() == {"error": "internal", "detail": None}
    assert "Secret document _id=" in caplog.text, "the operator learns which document"


async def test_a_path_cannot_forge_log_lines(
    make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    routes = web.RouteTableDef()

    @routes.get("/boom/{anything}")
    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    client = await make_client(routes)
    with caplog.at_level(logging.ERROR, "odm.contrib.aiohttp"):
        response = await client.get("/boom/x%0a2026-01-01 ERROR admin logged in%0d")
    assert response.status == 500
    (record,) = [r for r in caplog.records if r.name == "odm.contrib.aiohttp"]
    line = record.getMessage()
    assert "\n" not in line and "\r" not in line, line
    assert line.startswith("GET /boom/x%0A2026-01-01"), line


class Member(odm.Document):
    """A field stored under another key than its name."""

    email: str = Field(alias="em")

    class Meta:
        collection = "leak_members"


async def test_a_duplicate_key_409_names_the_field_not_its_stored_key(make_client: Any) -> None:
    routes = web.RouteTableDef()

    @routes.post("/members")
    async def join(request: web.Request) -> web.Response:
        await Member(em="a@example.org").insert()
        return json_response({}, status=201)

    client = await make_client(routes, collections=("leak_members",))
    await odm.get_database()["leak_members"].create_index("em", unique=True)
    assert (await client.post("/members")).status == 201
    response = await client.post("/members")
    assert response.status == 409
    assert await response.json() == {"error": "duplicate_key", "detail": {"fields": ["email"]}}
