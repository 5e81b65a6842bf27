"""Fixtures for the admin's HTTP tests: the test app on a fresh database, a client allowed in."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from odm.drivers import DriverName
from tests.integration.admin.support import ADMIN_HEADER, create_app, fresh_name

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def admin(aiohttp_client: Any, odm_uri: str, odm_driver: DriverName) -> Client:
    """A client of the test app that the app's authorize callable allows."""
    app = create_app(odm_uri, fresh_name(), odm_driver)
    client: Client = await aiohttp_client(app, headers={ADMIN_HEADER: "yes"})
    return client


@pytest.fixture
async def stranger(aiohttp_client: Any, odm_uri: str, odm_driver: DriverName) -> Client:
    """A client of the test app without the allowance."""
    client: Client = await aiohttp_client(create_app(odm_uri, fresh_name(), odm_driver))
    return client


async def csrf(client: Client, path: str = "/admin/") -> str:
    """Open ``path`` (which sets the CSRF cookie) and return the token of its form."""
    response = await client.get(path)
    assert response.status == 200, await response.text()
    text = await response.text()
    found = re.search(r'name="csrf_token" value="([^"]+)"', text)
    if found:
        return found.group(1)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/admin/"))
    return cookie["odm_admin_csrf"].value
