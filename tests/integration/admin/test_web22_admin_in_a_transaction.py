"""The admin mounted on an application whose own ``unit_of_work_middleware`` covers every
POST (as the demo shop, and docs/aiohttp.md's setup, do): a refused write still brings the
form back with its error, and the admin's writes are its own unit of work. Was: the admin's
transaction joined the application's, whose failure left it usable for nothing, so the form
page (its reference picker reads) failed with ``TransactionError``: a bare 500."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest
from aiohttp import web

import odm
from odm import Document, Reference
from odm.contrib.admin import ModelAdmin, setup_admin
from odm.contrib.aiohttp import odm_errors_middleware, setup_odm, unit_of_work_middleware
from odm.drivers import DriverName
from odm.models.fields import Indexed
from tests.integration.admin.conftest import Client, csrf
from tests.integration.admin.support import ADMIN_HEADER, authorize, fresh_name


class WbTeam(Document):
    """A reference's target: the form of a member lists teams in a picker (a read)."""

    name: str

    class Meta:
        collection = "wb_teams"


class WbMember(Document):
    """A member with a unique email and a team."""

    email: Annotated[str, Indexed(unique=True)]
    n: int = 0
    team: Reference[WbTeam] | None = None

    class Meta:
        collection = "wb_members"


@pytest.fixture
async def client(aiohttp_client: Any, odm_uri: str, odm_driver: DriverName) -> Client:
    """A client of an application with its own unit of work on every POST, and the admin."""
    name = fresh_name()
    app = web.Application(middlewares=[odm_errors_middleware, unit_of_work_middleware])
    setup_odm(app, odm_uri, db=name, driver=odm_driver, models=[WbTeam, WbMember])

    async def dropped(app: web.Application) -> AsyncIterator[None]:
        yield
        await odm.get_client().drop_database(name)

    app.cleanup_ctx.append(dropped)
    admins = [ModelAdmin(WbMember, name="member"), ModelAdmin(WbTeam, name="team")]
    setup_admin(app, admins, authorize=authorize)
    served: Client = await aiohttp_client(app, headers={ADMIN_HEADER: "yes"})
    return served


def field_errors(page: str, name: str) -> list[str]:
    """The error messages the form shows at the input ``name``."""
    found = re.findall(rf'id="e-{re.escape(name)}"[^>]*>([^<]*)<', page)
    return [html.unescape(text) for text in found]


async def emails() -> list[str]:
    """The members' emails, as stored."""
    return sorted([member.email async for member in WbMember.objects.all()])


async def test_a_duplicate_key_brings_the_form_back_with_a_409(client: Client) -> None:
    team = await WbTeam(name="blue").insert()
    await WbMember(email="ann@example.org", team=team).insert()
    token = await csrf(client)
    form = {"csrf_token": token, "email": "ann@example.org", "n": "1", "team": str(team.id)}
    response = await client.post("/admin/member/add/", data=form)
    page = await response.text()
    assert response.status == 409, page[:300]
    assert "email must be unique" in html.unescape(page)
    assert await emails() == ["ann@example.org"]


async def test_a_value_that_cannot_be_stored_brings_the_form_back(client: Client) -> None:
    team = await WbTeam(name="blue").insert()
    token = await csrf(client)
    form = {"csrf_token": token, "email": "bo@example.org", "n": str(2**70), "team": str(team.id)}
    response = await client.post("/admin/member/add/", data=form)
    page = await response.text()
    assert response.status == 400, page[:300]
    assert "cannot be stored in BSON" in html.unescape(page)
    assert await emails() == []


async def test_a_saved_form_is_committed(client: Client) -> None:
    token = await csrf(client)
    form = {"csrf_token": token, "email": "cy@example.org", "n": "3", "team": ""}
    response = await client.post("/admin/member/add/", data=form)
    assert response.status == 200 and "?msg=created" in str(response.url)
    assert await emails() == ["cy@example.org"]
