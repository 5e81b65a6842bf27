"""odm_errors_middleware: each error maps to its status and JSON body, with real errors."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiohttp import web
from bson import ObjectId
from pydantic import BaseModel, Field
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

import odm
from odm.contrib.aiohttp import json_body
from odm.server import free_port
from odm.session import current_session


class Payload(BaseModel):
    """A request body with constraints to break."""

    name: str = Field(min_length=1)
    age: int




async def test_does_not_exist_is_404(make_client: Any) -> None:
    routes = web.RouteTableDef()

    @routes.get("/customers/{id}")
    async def show(request: web.Request) -> web.Response:
        raise odm.DoesNotExist(f"no Customer with id {request.match_info['id']}")

    client = await make_client(routes)
    response = await client.get("/customers/42")
    assert response.status == 404
    assert await response.json() == {"error": "not_found", "detail": "no Customer with id 42"}


async def test_validation_error_is_400_listing_the_fields(make_client: Any) -> None:
    routes = web.RouteTableDef()

    @routes.post("/people")
    async def create(request: web.Request) -> web.Response:
        person = Payload.model_validate(await request.json())
        return web.json_response(person.model_dump())

    client = await make_client(routes)
    response = await client.post("/people", json={"name": "", "age": "old"})
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "invalid"
    assert [(d["field"], d["type"]) for d in body["detail"]] == [
        ("name", "string_too_short"),
        ("age", "int_parsing"),
    ]
    assert all(d["message"] for d in body["detail"])
    assert "old" not in await response.text(), "input values are not echoed"


async def test_query_error_is_400_naming_the_field(make_client: Any) -> None:
    routes = web.RouteTableDef()

    @routes.get("/x")
    async def show(request: web.Request) -> web.Response:
        raise odm.QueryError("unknown field 'agee' on Customer", field="agee")

    client = await make_client(routes)
    response = await client.get("/x")
    assert response.status == 400
    assert await response.json() == {
        "error": "invalid",
        "detail": [{"field": "agee", "message": "unknown field 'agee' on Customer"}],
    }


async def test_malformed_id_and_malformed_json_are_400(make_client: Any) -> None:
    routes = web.RouteTableDef()

    @routes.get("/items/{id}")
    async def show(request: web.Request) -> web.Response:
        return web.json_response({"id": str(ObjectId(request.match_info["id"]))})

    @routes.post("/items")
    async def create(request: web.Request) -> web.Response:
        return web.json_response(await request.json())

    client = await make_client(routes)
    response = await client.get("/items/not-an-id")
    assert response.status == 400
    assert (await response.json())["error"] == "invalid"
    response = await client.post(
        "/items", data=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json())["error"] == "invalid"


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b'{"n": ' + b"9" * 5000 + b"}", "application/json", "more than 4300 digits"),
        (b'{"name": "\xff"}', "application/json", "not valid in UTF-8 (byte 10)"),
        (b'{"name": "\xff"}', "application/json; charset=ascii", "not valid in the charset"),
        (b'{"name": "x"}', "application/json; charset=nope", "charset that is not known"),
        (b'{"name": "x"}', "application/json; charset=base64", "charset that is not known"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", "nests too deeply"),
    ],
    ids=["huge-int", "bad-utf8", "bad-ascii", "unknown-charset", "not-text-charset", "deep"],
)
async def test_json_body_that_cannot_be_decoded_is_400(
    make_client: Any, body: bytes, content_type: str, message: str
) -> None:
    """json_body: a >4300-digit integer (ValueError from json.loads), bytes invalid in the
    body's charset (UnicodeDecodeError from request.text()) and an unknown charset
    (LookupError) were 500s; every undecodable body is the JSONDecodeError of a 400."""
    routes = web.RouteTableDef()

    @routes.post("/search")
    async def search(request: web.Request) -> web.Response:
        return web.json_response({"keys": sorted(await json_body(request))})

    client = await make_client(routes)
    response = await client.post("/search", data=body, headers={"Content-Type": content_type})
    assert response.status == 400
    answer = await response.json()
    assert answer["error"] == "invalid"
    assert answer["detail"].startswith("the request body is not valid JSON: "), answer
    assert message in answer["detail"], answer
    assert "nope" not in answer["detail"] and "base64" not in answer["detail"], "not echoed"
    response = await client.post(
        "/search", data='{"n": 1, "é": 2}'.encode("latin-1"),
        headers={"Content-Type": "application/json; charset=latin-1"},
    )
    assert (response.status, await response.json()) == (200, {"keys": ["n", "é"]})


async def test_duplicate_key_is_409_naming_the_fields_and_aborts(
    make_client: Any, stored: Any
) -> None:
    routes = web.RouteTableDef()

    @routes.post("/customers")
    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        db = odm.get_database()
        await db["audit"].insert_one({"email": body["email"]}, session=current_session())
        await db["items"].insert_one({"email": body["email"]}, session=current_session())
        return web.json_response({}, status=201)

    @routes.post("/customers/odm")
    async def create_odm(request: web.Request) -> web.Response:
        try:
            await odm.get_database()["items"].insert_one({"email": "a@x.org"})
        except DuplicateKeyError as exc:
            raise odm.DuplicateKey("a customer with this email exists") from exc
        return web.json_response({}, status=201)

    client = await make_client(routes, collections=("items", "audit"))
    await odm.get_database()["items"].create_index("email", unique=True)
    assert (await client.post("/customers", json={"email": "a@x.org"})).status == 201
    response = await client.post("/customers", json={"email": "a@x.org"})
    assert response.status == 409
    assert await response.json() == {"error": "duplicate_key", "detail": {"fields": ["email"]}}
    # The first write of the failed request (to "audit") was rolled back with it.
    assert await stored("audit") == [{"email": "a@x.org"}]
    response = await client.post("/customers/odm")
    assert response.status == 409
    assert await response.json() == {"error": "duplicate_key", "detail": {"fields": ["email"]}}


async def test_stale_document_is_409(make_client: Any) -> None:
    routes = web.RouteTableDef()

    @routes.put("/x")
    async def save(request: web.Request) -> web.Response:
        raise odm.StaleDocument("Customer 1 changed since it was loaded")

    client = await make_client(routes)
    response = await client.put("/x")
    assert response.status == 409
    assert (await response.json())["error"] == "stale_document"


async def test_write_conflict_between_two_requests_is_409(
    make_client: Any, stored: Any
) -> None:
    first_wrote = asyncio.Event()
    second_done = asyncio.Event()
    routes = web.RouteTableDef()

    @routes.post("/bump/{who}")
    async def bump(request: web.Request) -> web.Response:
        who = request.match_info["who"]
        await odm.get_database()["items"].update_one(
            {"_id": 1}, {"$inc": {"n": 1}, "$push": {"by": who}}, session=current_session()
        )
        if who == "first":
            first_wrote.set()
            await second_done.wait()  # hold the transaction open while the second one writes
        return web.json_response({}, status=200)

    client = await make_client(routes)
    await odm.get_database()["items"].insert_one({"_id": 1, "n": 0, "by": []})
    first = asyncio.create_task(client.post("/bump/first"))
    await first_wrote.wait()
    try:
        second = await client.post("/bump/second")
    finally:
        second_done.set()
    assert second.status == 409
    assert (await second.json())["error"] == "conflict"
    assert (await first).status == 200
    assert await stored() == [{"n": 1, "by": ["first"]}]


async def test_operation_timeout_is_503(make_client: Any) -> None:
    routes = web.RouteTableDef()

    @routes.get("/slow")
    async def slow(request: web.Request) -> web.Response:
        with odm.operation_timeout(0.1, "slow search"):
            await odm.get_database()["items"].find_one({"$where": "sleep(1000) || true"})
        return web.json_response({})

    client = await make_client(routes)
    await odm.get_database()["items"].insert_one({"n": 1})
    response = await client.get("/slow")
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert await response.json() == {
        "error": "timeout",
        "detail": "the database did not answer in time",
    }


async def test_unreachable_server_is_503(make_client: Any) -> None:
    routes = web.RouteTableDef()

    @routes.get("/away")
    async def away(request: web.Request) -> web.Response:
        # A real client to a dead address: the driver's own ServerSelectionTimeoutError.
        dead = AsyncMongoClient(f"mongodb://127.0.0.1:{free_port()}/", serverSelectionTimeoutMS=100)
        try:
            await dead.x.y.find_one({})
        finally:
            await dead.close()
        return web.json_response({})

    client = await make_client(routes)
    response = await client.get("/away")
    assert response.status == 503
    assert await response.json() == {
        "error": "unavailable",
        "detail": "the database is unreachable",
    }


async def test_http_exceptions_pass_through(make_client: Any) -> None:
    routes = web.RouteTableDef()

    @routes.get("/teapot")
    async def teapot(request: web.Request) -> web.Response:
        raise web.HTTPForbidden(text="go away")

    client = await make_client(routes)
    response = await client.get("/teapot")
    assert response.status == 403
    assert await response.text() == "go away"


async def test_unknown_exception_is_a_bare_500_and_logged(
    make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    routes = web.RouteTableDef()

    @routes.get("/bug")
    async def bug(request: web.Request) -> web.Response:
        raise KeyError("password=hunter2")

    client = await make_client(routes)
    with caplog.at_level(logging.ERROR, "odm.contrib.aiohttp"):
        response = await client.get("/bug")
    assert response.status == 500
    assert await response.json() == {"error": "internal", "detail": None}
    assert "hunter2" in caplog.text
    assert "hunter2" not in await response.text()
