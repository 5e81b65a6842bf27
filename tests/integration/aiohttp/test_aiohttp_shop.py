"""The example shop (examples/shop) end to end, through HTTP, on the real replica set."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from odm.drivers import DriverName
from odm.models.fields import ObjectId

# The example stands on the Document layer and QuerySets; skip until they exist.
pytest.importorskip("odm.document")
pytest.importorskip("odm.queryset")

from examples.shop import create_app, seed

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def shop(
    aiohttp_client: Any, odm_uri: str, odm_driver: DriverName, drop_on_shutdown: Any
) -> AsyncIterator[tuple[Client, dict[str, str]]]:
    """The running shop on a fresh, seeded database, and the seeded customers' ids."""
    name = f"odm_shop_{uuid.uuid4().hex[:12]}"
    app = create_app(odm_uri, db=name, driver=odm_driver, timeout=30.0)
    drop_on_shutdown(app, name)
    client: Client = await aiohttp_client(app)
    customers = await seed()
    yield client, {key: str(c.id) for key, c in customers.items()}


async def balance(client: Client, customer_id: str) -> int:
    """The balance of a customer, read through the API."""
    response = await client.get(f"/customers/{customer_id}")
    assert response.status == 200
    value: int = (await response.json())["balance"]
    return value


async def test_browse_and_create(shop: tuple[Client, dict[str, str]]) -> None:
    client, ids = shop
    listed = await (await client.get("/customers")).json()
    assert [c["email"] for c in listed] == ["ann@example.org", "bob@example.org"]
    assert await balance(client, ids["ann"]) == 100_00 - 12_50
    orders = await (await client.get(f"/customers/{ids['ann']}/orders")).json()
    assert [(o["total"], o["customer"]) for o in orders] == [(12_50, ids["ann"])]

    response = await client.post("/customers", json={"email": "cy@example.org", "name": "Cy"})
    assert response.status == 201
    again = await client.post("/customers", json={"email": "cy@example.org", "name": "Cy 2"})
    assert again.status == 409
    assert (await again.json())["error"] == "duplicate_key"
    bad = await client.post("/customers", json={"email": "nope", "name": ""})
    assert bad.status == 400
    assert {d["field"] for d in (await bad.json())["detail"]} == {"email", "name"}


async def test_ids_bad_and_missing(shop: tuple[Client, dict[str, str]]) -> None:
    client, _ = shop
    assert (await client.get("/customers/not-an-id")).status == 400
    missing = await client.get(f"/customers/{ObjectId()}")
    assert missing.status == 404
    assert (await missing.json())["error"] == "not_found"


async def test_order_over_balance_is_refused_and_leaves_nothing(
    shop: tuple[Client, dict[str, str]],
) -> None:
    client, ids = shop
    refused = await client.post(f"/customers/{ids['bob']}/orders", json={"total": 60_00})
    assert refused.status == 409
    placed = await client.post(f"/customers/{ids['bob']}/orders", json={"total": 20_00})
    assert placed.status == 201
    assert await balance(client, ids["bob"]) == 30_00
    orders = await (await client.get(f"/customers/{ids['bob']}/orders")).json()
    assert [o["total"] for o in orders] == [20_00]


async def test_transfers_are_all_or_nothing(shop: tuple[Client, dict[str, str]]) -> None:
    client, ids = shop
    ok = await client.post(
        "/transfers", json={"source": ids["ann"], "target": ids["bob"], "amount": 10_00}
    )
    assert ok.status == 200
    assert (await balance(client, ids["ann"]), await balance(client, ids["bob"])) == (
        77_50,
        60_00,
    )
    too_much = await client.post(
        "/transfers", json={"source": ids["bob"], "target": ids["ann"], "amount": 1_000_00}
    )
    assert too_much.status == 409
    # The debit happens first; the unknown target's 404 aborts it.
    lost = await client.post(
        "/transfers",
        json={"source": ids["ann"], "target": str(ObjectId()), "amount": 5_00},
    )
    assert lost.status == 404
    assert await balance(client, ids["ann"]) == 77_50


async def test_concurrent_transfers_conserve_money(shop: tuple[Client, dict[str, str]]) -> None:
    client, ids = shop
    total_before = await balance(client, ids["ann"]) + await balance(client, ids["bob"])
    requests = [
        client.post(
            "/transfers",
            json={
                "source": ids["ann"] if n % 2 else ids["bob"],
                "target": ids["bob"] if n % 2 else ids["ann"],
                "amount": 1_00,
            },
        )
        for n in range(40)
    ]
    statuses = [r.status for r in await asyncio.gather(*requests)]
    # Write conflicts between concurrent transactions on one account answer 409 (retry).
    assert set(statuses) <= {200, 409}
    assert statuses.count(200) >= 1
    total_after = await balance(client, ids["ann"]) + await balance(client, ids["bob"])
    assert total_after == total_before
