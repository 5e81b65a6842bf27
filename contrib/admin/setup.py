"""``setup_admin``: mount the admin on an aiohttp application as a sub-app under ``prefix``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from ..aiohttp.middlewares import unit_of_work_middleware
from . import views
from .errors import admin_errors_middleware
from .isolation import own_unit_of_work_middleware
from .options import ModelAdmin, as_admin
from .security import Authorize, guard_middleware
from .site import ADMIN_SITE, AdminSite

TEMPLATES = Path(__file__).with_name("templates")
"""The admin's Jinja2 templates."""


def setup_admin(
    app: web.Application,
    models: Iterable[type[Any] | ModelAdmin],
    *,
    authorize: Authorize,
    prefix: str = "/admin",
    migrations: Path | str | None = None,
    title: str = "odm admin",
) -> web.Application:
    """Serve the admin of ``models`` under ``prefix``; return its sub-application.

    ``models`` are Document classes or :class:`ModelAdmin` options. ``authorize(request)``
    (sync or async) must return ``True`` for a request to be served: there is no default
    allowance (:func:`local_only` is one for a machine of one's own). ``migrations``: a
    directory of migration files, whose state the migrations page shows.
    Every form carries a CSRF token and every POST runs in one unit of work.
    """
    if not callable(authorize):
        raise TypeError("setup_admin(authorize=...) must be a callable: request -> bool")
    prefix = "/" + prefix.strip("/")
    if prefix == "/":
        raise ValueError("setup_admin(prefix=...) must not be the root: mount it under a path")
    site = AdminSite(
        prefix=prefix,
        migrations=Path(migrations) if migrations is not None else None,
        title=title,
    )
    for entry in models:
        admin = as_admin(entry)
        if admin.slug in site.admins or admin.slug.startswith("_"):
            raise ValueError(f"setup_admin: two models would be served at {admin.slug!r}")
        site.admins[admin.slug] = admin
    subapp = web.Application(
        middlewares=[
            guard_middleware(authorize, prefix),
            own_unit_of_work_middleware,
            admin_errors_middleware,
            unit_of_work_middleware,
        ]
    )
    aiohttp_jinja2.setup(
        subapp,
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    subapp[ADMIN_SITE] = site
    # Before the model routes, which would take "_migrations" for a model's name.
    subapp.router.add_get("/_migrations/", views.migrations)
    subapp.add_routes(views.routes)
    app.add_subapp(prefix, subapp)
    return subapp
