"""An input left empty is its field's default (``None`` when the field is optional), on a new
document and on an edit alike, and refused at the input when the field is required. Was: a
cleared number was ignored on an edit (the stored value kept, "The changes were saved"), and a
JSON input left empty was refused ("Input should be a valid dictionary"), also in a new row."""

from __future__ import annotations

from typing import Any

import pytest

from odm import Document, Embedded
from odm.contrib.admin import ModelAdmin
from odm.drivers import DriverName
from tests.integration.admin.admin_refusals_app import serving_app
from tests.integration.admin.conftest import Client, csrf
from tests.integration.admin.support import ADMIN_HEADER
from tests.integration.admin.test_admin_bad_input import field_errors


class EiBox(Embedded):
    """An embedded model whose inputs all have defaults."""

    label: str = ""
    n: int = 0
    data: dict[str, int] = {}


class EiOrder(Document):
    """Fields with defaults of every kind of input, one required number."""

    size: int
    qty: int = 5
    data: dict[str, int] = {}
    box: EiBox | None = None
    rows: list[EiBox] = []

    class Meta:
        collection = "ei_orders"


@pytest.fixture
async def orders(aiohttp_client: Any, odm_uri: str, odm_driver: DriverName) -> Client:
    """A client of the orders' admin, allowed in."""
    app = serving_app(odm_uri, odm_driver, [EiOrder], [ModelAdmin(EiOrder, name="order")])
    client: Client = await aiohttp_client(app, headers={ADMIN_HEADER: "yes"})
    return client


BLANK_BOX = {"box.label": "", "box.n": "", "box.data": ""}
"""The inputs of the optional embedded model, left empty: no box."""


async def test_empty_inputs_of_a_new_document_and_row_are_their_defaults(orders: Client) -> None:
    token = await csrf(orders)
    form = {"csrf_token": token, "size": "3", "qty": "", "data": "", **BLANK_BOX}
    row = {"rows.0.label": "r", "rows.0.n": "", "rows.0.data": "", "rows.1.label": ""}
    response = await orders.post("/admin/order/add/", data={**form, **row})
    assert response.status == 200 and "?msg=created" in str(response.url), await response.text()
    (order,) = await EiOrder.objects.all()
    assert (order.size, order.qty, order.data, order.box) == (3, 5, {}, None)
    assert order.rows == [EiBox(label="r")]


async def test_a_cleared_input_is_its_default_on_an_edit_not_ignored(orders: Client) -> None:
    order = await EiOrder(size=1, qty=9, data={"a": 1}, box=EiBox(n=2, data={"b": 2})).insert()
    token = await csrf(orders)
    cleared = {"qty": "", "data": "", "box.label": "kept", "box.n": "", "box.data": ""}
    response = await orders.post(
        f"/admin/order/{order.id}/edit/", data={"csrf_token": token, "size": "1", **cleared}
    )
    assert response.status == 200 and "?msg=saved" in str(response.url), await response.text()
    saved = await EiOrder.objects.get(id=order.id)
    assert (saved.qty, saved.data, saved.box) == (5, {}, EiBox(label="kept"))


async def test_a_required_input_left_empty_is_refused_at_it(orders: Client) -> None:
    order = await EiOrder(size=1, qty=9).insert()
    token = await csrf(orders)
    for path in ("/admin/order/add/", f"/admin/order/{order.id}/edit/"):
        response = await orders.post(path, data={"csrf_token": token, "size": "", "qty": "2"})
        assert response.status == 400, path
        assert field_errors(await response.text(), "size") != [], path
    assert [(o.size, o.qty) for o in await EiOrder.objects.all()] == [(1, 9)]


async def test_an_input_missing_from_the_post_keeps_the_stored_value(orders: Client) -> None:
    """Only an input posted empty is its default: one the POST does not hold at all (a
    script, a page of an older version) leaves the field as stored, as Django's ModelForm
    does."""
    order = await EiOrder(size=1, qty=42, data={"a": 1}).insert()
    token = await csrf(orders)
    response = await orders.post(
        f"/admin/order/{order.id}/edit/", data={"csrf_token": token, "size": "4"}
    )
    assert response.status == 200 and "?msg=saved" in str(response.url), await response.text()
    saved = await EiOrder.objects.get(id=order.id)
    assert (saved.size, saved.qty, saved.data) == (4, 42, {"a": 1})
