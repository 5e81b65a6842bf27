"""The admin mounted on an application whose own ``unit_of_work_middleware`` covers every POST
runs apart from that transaction, and keeps the rest of the request's context: what the
application's middlewares set in context variables (the acting user its ``before_save`` hooks
stamp) reaches the admin's saves as it does without a transaction. Was: the admin ran in an
empty context, so such a hook saw none of it (the document was saved as by nobody)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

import pytest
from aiohttp import web

import odm
from odm import Document
from odm.contrib.admin import ModelAdmin, setup_admin
from odm.contrib.aiohttp import odm_errors_middleware, setup_odm, unit_of_work_middleware
from odm.contrib.aiohttp.middlewares import new_style
from odm.drivers import DriverName
from tests.integration.admin.conftest import Client, csrf
from tests.integration.admin.support import ADMIN_HEADER, authorize, fresh_name

#: The user the application's middleware says is acting, as an audit hook reads it.
ACTING_USER: ContextVar[str | None] = ContextVar("rm22_acting_user", default=None)


class RmNote(Document):
    """A note stamped with who saved it last, by its own hook."""

    body: str
    saved_by: str | None = None

    class Meta:
        collection = "rm22_notes"

    async def before_save(self) -> None:
        """Stamp the acting user (the application's context variable)."""
        self.saved_by = ACTING_USER.get()


@new_style
async def acting_user_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Set the acting user from the request, as an application's authentication does."""
    ACTING_USER.set(request.headers.get("X-Rm-User"))
    return await handler(request)


async def app_client(aiohttp_client: Any, odm_uri: str, driver: DriverName, uow: bool) -> Client:
    """A client of an application with the admin, its own unit of work on every POST when
    ``uow``."""
    name = fresh_name()
    middlewares = [odm_errors_middleware, acting_user_middleware]
    app = web.Application(middlewares=[*middlewares, *([unit_of_work_middleware] if uow else [])])
    setup_odm(app, odm_uri, db=name, driver=driver, models=[RmNote])

    async def dropped(app: web.Application) -> AsyncIterator[None]:
        yield
        await odm.get_client().drop_database(name)

    app.cleanup_ctx.append(dropped)
    setup_admin(app, [ModelAdmin(RmNote, name="note")], authorize=authorize)
    headers = {ADMIN_HEADER: "yes", "X-Rm-User": "ann"}
    served: Client = await aiohttp_client(app, headers=headers)
    return served


@pytest.mark.parametrize("uow", [False, True], ids=["RmNoAppTransaction", "RmAppTransaction"])
async def test_Rm_the_admins_saves_see_the_applications_context(
    aiohttp_client: Any, odm_uri: str, odm_driver: DriverName, uow: bool
) -> None:
    client = await app_client(aiohttp_client, odm_uri, odm_driver, uow)
    token = await csrf(client)
    form = {"csrf_token": token, "body": "hello", "saved_by": ""}
    response = await client.post("/admin/note/add/", data=form)
    assert response.status == 200 and "?msg=created" in str(response.url), await response.text()
    note = await RmNote.objects.get(body="hello")
    assert note.saved_by == "ann"
    edit = {"csrf_token": token, "body": "edited", "saved_by": ""}
    response = await client.post(f"/admin/note/{note.id}/edit/", data=edit)
    assert response.status == 200, await response.text()
    assert [(n.body, n.saved_by) async for n in RmNote.objects.all()] == [("edited", "ann")]
