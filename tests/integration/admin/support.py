"""The admin's test application: documents with every kind of field the forms handle, and
the app serving them (shared by the HTTP tests and the browser tests)."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

import odm
from odm import Decimal, Document, Embedded, Field, Reference
from odm.contrib.admin import ModelAdmin, setup_admin
from odm.contrib.aiohttp import odm_errors_middleware, setup_odm
from odm.demo.shop import MIGRATIONS as MIGRATIONS_DIR
from odm.drivers import DriverName

ADMIN_HEADER = "X-Test-Admin"
"""The header (or cookie) the test app's authorize callable wants to see set to "yes"."""


class Binding(enum.Enum):
    """An enum field's values."""

    PAPER = "paper"
    CLOTH = "cloth"


class Line(Embedded):
    """A row of an embedded list."""

    sku: str = Field(min_length=1)
    qty: int = Field(gt=0)


class Address(Embedded):
    """An embedded model."""

    city: str
    zip: str = ""


class AdminAuthor(Document):
    """A reference's target."""

    name: str
    email: str = ""

    class Meta:
        collection = "admin_authors"


class AdminBook(Document):
    """A document with scalars, an enum, a datetime, a Decimal, a reference, embedded models
    and lists, under an optimistic lock."""

    title: str = Field(min_length=1)
    pages: int = Field(ge=1)
    price: Decimal = decimal.Decimal("0")
    binding: Binding = Binding.PAPER
    published: dt.datetime | None = None
    in_print: bool = True
    author: Reference[AdminAuthor] | None = None
    address: Address | None = None
    lines: list[Line] = []
    tags: list[str] = []
    notes: str = ""

    class Meta:
        collection = "admin_books"
        optimistic_lock = True


class AdminSetting(Document):
    """A document whose values the form takes as JSON (a mapping, and a list in a row), and
    a list of numbers, one per line."""

    name: str
    data: dict[str, int]
    address: Address | None = None
    ports: list[int] = []

    class Meta:
        collection = "admin_settings"


async def full_book(
    title: str = "Tea & <b>cake</b>", author_name: str = "Ann <Lee>"
) -> tuple[AdminBook, AdminAuthor]:
    """A book with every field set and its stored author (by default with text that must be
    escaped)."""
    author = await AdminAuthor(name=author_name, email="ann@example.org").insert()
    book = await AdminBook(
        title=title,
        pages=120,
        price=decimal.Decimal("12.30"),
        binding=Binding.CLOTH,
        published=dt.datetime(2024, 5, 1, 10, 30, tzinfo=dt.UTC),
        in_print=False,
        author=author,
        address=Address(city="Oslo", zip="0150"),
        lines=[Line(sku="tea", qty=2), Line(sku="cake", qty=1)],
        tags=["green", "hot"],
    ).insert()
    return book, author


def admin_models(per_page: int = 25) -> list[ModelAdmin]:
    """The admin options of the test app, with ``per_page`` books on a list page."""
    return [
        ModelAdmin(AdminAuthor, name="author"),
        ModelAdmin(AdminSetting, name="setting"),
        ModelAdmin(
            AdminBook,
            name="book",
            list_display=("id", "title", "pages", "price", "binding", "published"),
            search_fields=("title", "notes"),
            readonly_fields=("notes",),
            per_page=per_page,
        ),
    ]


def authorize(request: web.Request) -> bool:
    """Allow requests carrying the test header or cookie."""
    return "yes" in (request.headers.get(ADMIN_HEADER), request.cookies.get("admin"))


def fresh_name() -> str:
    """A database name no other test uses."""
    return f"odm_admin_{uuid.uuid4().hex[:12]}"


def create_app(
    uri: str,
    name: str,
    driver: DriverName | None = None,
    *,
    per_page: int = 25,
    admins: list[ModelAdmin] | None = None,
    migrations: Path = MIGRATIONS_DIR,
) -> web.Application:
    """The test app: the admin of the test models on database ``name``, dropped on shutdown.

    ``admins``: the models the admin serves (default: :func:`admin_models`); ``migrations``:
    the directory of its migrations page (default: the demo shop's).
    """
    app = web.Application(middlewares=[odm_errors_middleware])
    models = [AdminAuthor, AdminBook, AdminSetting]
    setup_odm(app, uri, db=name, driver=driver, models=models, timeout=30.0)

    async def collections(app: web.Application) -> AsyncIterator[None]:
        # Created up front: transactions cannot create collections concurrently.
        for collection in ("admin_authors", "admin_books", "admin_settings"):
            await odm.get_database().create_collection(collection)
        yield
        await odm.get_client().drop_database(name)

    app.cleanup_ctx.append(collections)
    served = admin_models(per_page) if admins is None else admins
    setup_admin(app, served, authorize=authorize, migrations=migrations)
    return app
