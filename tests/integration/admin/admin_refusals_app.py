"""What the s17 admin tests share: an app serving the admin of given models on a fresh
database (a module of helpers, without tests or Documents, so that importing it twice, as
pytest and a test do, declares nothing twice)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

import odm
from odm.contrib.admin import ModelAdmin, setup_admin
from odm.contrib.aiohttp import odm_errors_middleware, setup_odm
from odm.drivers import DriverName
from tests.integration.admin.support import authorize, fresh_name

APP_NAME = "odm_admin_s17_writes"
"""The test app's client name: its fail points match its commands only (the server is shared)."""


def serving_app(
    uri: str, driver: DriverName, models: list[type[Any]], admins: list[ModelAdmin]
) -> web.Application:
    """The admin of ``admins`` on a fresh database holding ``models``' collections (made at
    startup, with their indexes), dropped on shutdown; its client is named :data:`APP_NAME`."""
    name = fresh_name()
    app = web.Application(middlewares=[odm_errors_middleware])
    setup_odm(app, uri, db=name, driver=driver, models=models, appname=APP_NAME)

    async def dropped(app: web.Application) -> AsyncIterator[None]:
        yield
        await odm.get_client().drop_database(name)

    app.cleanup_ctx.append(dropped)
    setup_admin(app, admins, authorize=authorize)
    return app
