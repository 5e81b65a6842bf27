"""The shop's web application: ``create_app(uri)`` builds it, ``seed()`` fills a fresh database.

Handlers never pass a session nor undo their writes: every POST runs in one transaction
(``unit_of_work_middleware``), committed when the response status is below 400 and aborted
otherwise, and ODM errors become JSON answers (``odm_errors_middleware``): a bad id is a 400, a
missing customer a 404, a taken email a 409.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field, model_validator

from odm.blocks import transaction
from odm.connection import Retry
from odm.contrib.admin import (  # type: ignore[import-not-found, unused-ignore]
    ModelAdmin,
    setup_admin,
)

# odm.contrib is contrib/ installed under odm (see pyproject.toml); mypy, run on the source tree,
# does not follow that mapping, hence the ignore (unused where it does).
from odm.contrib.aiohttp import (  # type: ignore[import-not-found, unused-ignore]
    error_response,
    json_body,
    odm_errors_middleware,
    setup_odm,
    unit_of_work_middleware,
)
from odm.drivers import DriverName
from odm.exceptions import QueryError
from odm.query.expressions import F
from odm.query.q import Q

from .models import MODELS, Customer, Order

MIGRATIONS = Path(__file__).with_name("migrations")
"""The shop's migration files (the admin's migrations page shows their state)."""

routes = web.RouteTableDef()

LANDING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>odm demo: the shop</title></head>
<body style="font: 15px/1.5 system-ui, sans-serif; max-width: 40em; margin: 2em auto">
<h1>odm demo: the shop</h1>
<p>An aiohttp application on odm, with its data in MongoDB.</p>
<ul>
{admin}
<li>The JSON API: <a href="/customers">GET /customers</a>, <code>GET /customers/{{id}}</code>,
<code>GET /customers/{{id}}/orders</code>, <code>POST /customers</code>,
<code>POST /customers/{{id}}/orders</code>, <code>POST /transfers</code></li>
</ul>
</body></html>
"""
"""The demo's page at ``/``; ``{admin}`` is the admin's item (empty without an admin)."""

ADMIN_ITEM = (
    '<li><a href="/admin/">The admin</a>: browse and edit customers and orders, see the '
    "migrations. It is served to this machine only (an explicit local-only allowance).</li>"
)
"""The landing page's line about the admin."""


async def landing(request: web.Request) -> web.Response:
    """The page at ``/``: where the admin and the JSON API are."""
    with_admin = request.app.get(ADMIN_ENABLED, False)
    return web.Response(
        text=LANDING.format(admin=ADMIN_ITEM if with_admin else ""), content_type="text/html"
    )


ADMIN_ENABLED: web.AppKey[bool] = web.AppKey("shop_admin_enabled", bool)
"""Whether the app serves the admin (the landing page links it then)."""


class NewCustomer(BaseModel):
    """The body of ``POST /customers``: clients may not choose an id."""

    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    name: str = Field(min_length=1)
    balance: int = Field(default=0, ge=0)


class NewOrder(BaseModel):
    """The body of ``POST /customers/{id}/orders``."""

    total: int = Field(gt=0)
    items: list[dict[str, Any]] = []


class Transfer(BaseModel):
    """The body of ``POST /transfers``: move ``amount`` cents from ``source`` to ``target``."""

    source: str
    target: str
    amount: int = Field(gt=0)

    @model_validator(mode="after")
    def _distinct(self) -> Transfer:
        if self.source == self.target:
            raise ValueError("source and target must be different accounts")
        return self


def _error(status: int, error: str, detail: Any) -> web.Response:
    """Answer in the JSON shape of ``odm_errors_middleware``; the status aborts the request."""
    response: web.Response = error_response(status, error, detail)
    return response


def customer_json(customer: Customer) -> dict[str, Any]:
    """The public representation of a customer."""
    return customer.model_dump(mode="json")


def order_json(order: Order) -> dict[str, Any]:
    """The public representation of an order (the customer as its id)."""
    return {
        "id": str(order.id),
        "customer": str(order.customer.id),
        "total": order.total,
        "items": order.items,
        "status": order.status,
    }


@routes.get("/customers")
async def list_customers(request: web.Request) -> web.Response:
    """Every customer, by email."""
    customers = await Customer.objects.order_by("email")
    return web.json_response([customer_json(c) for c in customers])


@routes.post("/customers")
async def create_customer(request: web.Request) -> web.Response:
    """Create a customer; a taken email is a 409 (unique index), a bad body a 400."""
    body = NewCustomer.model_validate(await json_body(request))
    customer = Customer(**body.model_dump())
    await customer.insert()
    return web.json_response(customer_json(customer), status=201)


@routes.get("/customers/{id}")
async def show_customer(request: web.Request) -> web.Response:
    """One customer: a malformed id is a 400 and an unknown one a 404 (the middleware)."""
    customer = await Customer.objects.get(id=request.match_info["id"])
    return web.json_response(customer_json(customer))


@routes.get("/customers/{id}/orders")
async def list_orders(request: web.Request) -> web.Response:
    """The orders of one customer."""
    customer = await Customer.objects.get(id=request.match_info["id"])
    orders = await Order.objects.filter(customer=customer.id).order_by("created")
    return web.json_response([order_json(o) for o in orders])


def _lookups(body: Any) -> dict[str, Any]:
    """The body of a search: a JSON object of lookups (``{"status": "paid", "total__gte": 5}``).

    It is expanded as keyword arguments as it comes: every key is a lookup for odm (none can
    bind a parameter of ``filter``/``exclude``/``get``), and unknown ones are a 400.
    """
    if not isinstance(body, dict):
        raise QueryError("the body must be a JSON object of lookups (field__lookup: value)")
    return body


@routes.post("/customers/{id}/orders/search")
async def search_orders(request: web.Request) -> web.Response:
    """The orders of one customer matching the body's lookups; ``?exclude=1``: those that do
    not match them. Never another customer's orders, whatever the body says."""
    customer = await Customer.objects.get(id=request.match_info["id"])
    lookups = _lookups(await json_body(request))
    if request.query.get("exclude"):
        found = Order.objects.filter(customer=customer.id).exclude(**lookups)
    else:
        found = Order.objects.filter(Q(customer=customer.id), **lookups)
    return web.json_response([order_json(o) for o in await found.order_by("created")])


@routes.post("/customers/{id}/orders/find")
async def find_order(request: web.Request) -> web.Response:
    """The one order of this customer matching the body's lookups (404 if none)."""
    customer = await Customer.objects.get(id=request.match_info["id"])
    lookups = _lookups(await json_body(request))
    try:
        order = await Order.objects.get(Q(customer=customer.id), **lookups)
    except Order.MultipleObjectsReturned:
        return _error(400, "ambiguous", "more than one order matches; narrow the lookups")
    return web.json_response(order_json(order))


@routes.post("/customers/{id}/orders")
async def place_order(request: web.Request) -> web.Response:
    """Place an order paid from the customer's balance; 409 if the balance is too low."""
    body = NewOrder.model_validate(await json_body(request))
    customer = await Customer.objects.get(id=request.match_info["id"])
    if customer.balance < body.total:
        return _error(409, "insufficient_balance", {"balance": customer.balance})
    customer.balance -= body.total
    await customer.save()
    order = Order(customer=customer, total=body.total, items=body.items)
    await order.insert()
    return web.json_response(order_json(order), status=201)


@routes.post("/transfers")
async def transfer(request: web.Request) -> web.Response:
    """Move money between two balances, all or nothing."""
    body = Transfer.model_validate(await json_body(request))
    # One conditional update: the balance cannot go negative even under concurrent transfers.
    debited = await Customer.objects.filter(id=body.source, balance__gte=body.amount).update(
        balance=F("balance") - body.amount
    )
    if not debited:
        await Customer.objects.get(id=body.source)  # an unknown source is a 404
        return _error(409, "insufficient_balance", None)
    credited = await Customer.objects.filter(id=body.target).update(
        balance=F("balance") + body.amount
    )
    if not credited:
        # The debit is already written, in this request's transaction: answering with a 4xx is
        # enough for the unit-of-work middleware to abort it.
        return _error(404, "not_found", "no customer with the target id")
    return web.json_response(body.model_dump())


def create_app(
    uri: str,
    *,
    db: str | None = None,
    driver: DriverName | None = None,
    retry: Retry | None = None,
    timeout: float = 10.0,
    admin: Callable[[web.Request], bool] | None = None,
) -> web.Application:
    """Build the shop application for the MongoDB at ``uri`` (database in its path or ``db``).

    With ``admin`` (the admin's ``authorize`` callable) the app also serves
    :mod:`odm.contrib.admin` on the shop's models under ``/admin/``.
    """
    app = web.Application(middlewares=[odm_errors_middleware, unit_of_work_middleware])
    app.router.add_get("/", landing)
    app.add_routes(routes)
    setup_odm(app, uri, models=MODELS, db=db, driver=driver, retry=retry, timeout=timeout)
    app[ADMIN_ENABLED] = admin is not None
    if admin is not None:
        setup_admin(app, ADMIN_MODELS, authorize=admin, migrations=MIGRATIONS, title="shop admin")
    return app


ADMIN_MODELS = [
    ModelAdmin(Customer, list_display=("id", "email", "name", "balance", "created")),
    ModelAdmin(
        Order,
        list_display=("id", "customer", "total", "status", "created"),
        search_fields=("status",),
    ),
]
"""The shop's models as the admin shows them."""


async def seed() -> dict[str, Customer]:
    """Insert two customers and an order, in one transaction, on the connected default alias.

    Return the customers by first name.
    """
    async with transaction():
        ann = Customer(email="ann@example.org", name="Ann", balance=100_00)
        bob = Customer(email="bob@example.org", name="Bob", balance=50_00)
        await ann.insert()
        await bob.insert()
        await Order(customer=ann, total=12_50, items=[{"sku": "tea", "qty": 2}]).insert()
        ann.balance -= 12_50
        await ann.save()
    return {"ann": ann, "bob": bob}


def main() -> None:
    """Serve the shop on http://localhost:8080 (``$MONGODB_URI``, ``$PORT`` to change)."""
    uri = os.environ.get("MONGODB_URI", "mongodb://localhost:27017/shop")
    # handler_cancellation: a client that goes away cancels its handler, and so aborts its
    # unit of work instead of committing work nobody will see the answer to.
    port = int(os.environ.get("PORT", "8080"))
    web.run_app(create_app(uri), port=port, handler_cancellation=True)
