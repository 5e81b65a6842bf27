"""``AdminSite``: the registered models and settings of one admin, stored on its sub-app."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .options import ModelAdmin


@dataclass
class AdminSite:
    """What one ``setup_admin`` call serves: its models by slug, prefix and migrations."""

    prefix: str
    admins: dict[str, ModelAdmin] = field(default_factory=dict)
    migrations: Path | None = None
    title: str = "odm admin"

    def admin_for(self, slug: str) -> ModelAdmin:
        """The options of the model at ``slug``; an unknown slug is a 404."""
        admin = self.admins.get(slug)
        if admin is None:
            raise web.HTTPNotFound(text=f"no model {slug!r} in this admin")
        return admin

    def admin_of(self, model: type[Any] | None) -> ModelAdmin | None:
        """The options of ``model`` when it is registered here (for links to references)."""
        for admin in self.admins.values():
            if admin.model is model:
                return admin
        return None

    def url(self, *parts: object) -> str:
        """The admin URL of ``parts`` (``url("customer", id)`` -> ``/admin/customer/<id>/``).

        Each part is one path segment, percent-encoded: an id is any string (``id: str``), and
        a ``/``, ``?`` or ``#`` in it would make the link another page.
        """
        return "/".join([self.prefix, *(quote(str(p), safe="") for p in parts)]) + "/"


ADMIN_SITE: web.AppKey[AdminSite] = web.AppKey("odm_admin_site", AdminSite)
"""The admin sub-app's :class:`AdminSite`."""
