"""The admin inside the shop, whose own unit-of-work middleware wraps the admin's: the admin's
transaction joins the shop's, and a refused form aborts both."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

import odm
from odm.contrib.admin import local_only
from odm.demo.shop import Customer, create_app, seed
from odm.drivers import DriverName
from tests.integration.admin.conftest import csrf

Client = TestClient[web.Request, web.Application]


async def test_shop_admin_creates_refuses_and_lands(
    aiohttp_client: Any, odm_uri: str, odm_driver: DriverName
) -> None:
    name = f"odm_shop_admin_{uuid.uuid4().hex[:12]}"
    app = create_app(odm_uri, db=name, driver=odm_driver, timeout=30.0, admin=local_only)

    async def drop(app: web.Application) -> AsyncIterator[None]:
        yield
        await odm.get_client().drop_database(name)

    app.cleanup_ctx.append(drop)
    client: Client = await aiohttp_client(app)
    await seed()
    landing = await client.get("/")
    assert 'href="/admin/"' in await landing.text()
    token = await csrf(client, "/admin/customer/add/")
    refused = await client.post(
        "/admin/customer/add/",
        data={"csrf_token": token, "email": "cy@example.org", "name": "Cy", "balance": "lots"},
    )
    assert refused.status == 400
    assert 'data-error="balance"' in await refused.text()
    created = await client.post(
        "/admin/customer/add/",
        data={"csrf_token": token, "email": "cy@example.org", "name": "Cy", "balance": "5"},
        allow_redirects=False,
    )
    assert created.status == 303, await created.text()
    assert (await Customer.objects.get(email="cy@example.org")).balance == 5
    taken = await client.post(
        "/admin/customer/add/",
        data={"csrf_token": token, "email": "cy@example.org", "name": "Cy 2"},
    )
    assert taken.status == 409  # the unique index, answered by the shop's error middleware
    assert await Customer.objects.count() == 3
