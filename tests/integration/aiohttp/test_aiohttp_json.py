"""``json_response``: a report of documents, values() rows and aggregates answers as JSON
(issue #21, item 1), where ``web.json_response`` raised TypeError on a Decimal or an ObjectId."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web

import odm
from odm import Document
from odm.aggregates import Count, Sum
from odm.contrib.aiohttp import json_dumps, json_response


class JsLine(Document):
    sku: str
    amount: odm.Decimal
    at: dt.datetime

    class Meta:
        collection = "js_lines"


AT = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)


async def test_a_report_is_json(make_client: Any) -> None:
    routes = web.RouteTableDef()

    @routes.post("/lines")
    async def seed(request: web.Request) -> web.Response:
        await JsLine.objects.bulk_create([
            JsLine(sku="a", amount=Decimal("1.10"), at=AT),
            JsLine(sku="a", amount=Decimal("2.20"), at=AT),
            JsLine(sku="b", amount=Decimal("0.05"), at=AT),
        ])
        return json_response(await JsLine.objects.order_by("amount"), status=201)

    @routes.get("/report")
    async def report(request: web.Request) -> web.Response:
        by_sku = JsLine.objects.values("sku").annotate(n=Count(), total=Sum("amount"))
        return json_response({
            "by_sku": await by_sku.order_by("sku"),
            "totals": await JsLine.objects.aggregate(total=Sum("amount")),
            "last": await JsLine.objects.values("id", "at").order_by("-amount")[:1],
        })

    @routes.get("/plain")
    async def plain(request: web.Request) -> web.Response:
        rows = await JsLine.objects.values("amount")
        return web.json_response(rows, dumps=json_dumps)

    client = await make_client(routes, collections=("js_lines",))
    created = await client.post("/lines")
    assert created.status == 201
    lines = await created.json()
    assert [(line["sku"], line["amount"]) for line in lines] == [
        ("b", "0.05"), ("a", "1.10"), ("a", "2.20")
    ]
    assert all(len(line["id"]) == 24 and line["at"] == "2024-05-01T00:00:00Z" for line in lines)
    response = await client.get("/report")
    assert response.status == 200
    body = await response.json()
    assert body["by_sku"] == [{"sku": "a", "n": 2, "total": "3.30"},
                              {"sku": "b", "n": 1, "total": "0.05"}]
    assert body["totals"] == {"total": "3.35"}
    assert body["last"] == [{"id": lines[2]["id"], "at": "2024-05-01T00:00:00Z"}]
    plain_rows = await (await client.get("/plain")).json()
    assert sorted(r["amount"] for r in plain_rows) == ["0.05", "1.10", "2.20"]


def test_plain_json_response_cannot_and_json_dumps_can() -> None:
    row = {"amount": Decimal("1.10")}
    with pytest.raises(TypeError, match="Decimal"):
        web.json_response(row)
    assert json_dumps(row) == '{"amount": "1.10"}'
