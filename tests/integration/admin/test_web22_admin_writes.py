"""An edit whose POST leaves out an embedded model's or a list of them's inputs, or some of
their children's, keeps what is stored there, as it keeps a top-level field left out (a script,
a page of an older version of the form). Was: the embedded model was wiped to ``None`` and the
list to ``[]``, and a child left out took its default, though the user saw none of it."""

from __future__ import annotations

from typing import Any

import pytest

from odm import Document, Embedded
from odm.contrib.admin import ModelAdmin
from odm.drivers import DriverName
from tests.integration.admin.admin_refusals_app import serving_app
from tests.integration.admin.conftest import Client, csrf
from tests.integration.admin.support import ADMIN_HEADER


class WbBox(Embedded):
    """An embedded model and a row, with defaults an omitted input must not bring back."""

    label: str = ""
    n: int = 0


class WbFlags(Embedded):
    """An embedded model of checkboxes only: an unticked one is not posted."""

    on: bool = False


class WbOrder(Document):
    """An order with an optional embedded model, a list of them and one of checkboxes."""

    size: int
    box: WbBox | None = None
    rows: list[WbBox] = []
    flags: WbFlags = WbFlags()

    class Meta:
        collection = "wb_orders"


@pytest.fixture
async def orders(aiohttp_client: Any, odm_uri: str, odm_driver: DriverName) -> Client:
    """A client of the orders' admin, allowed in."""
    app = serving_app(odm_uri, odm_driver, [WbOrder], [ModelAdmin(WbOrder, name="order")])
    client: Client = await aiohttp_client(app, headers={ADMIN_HEADER: "yes"})
    return client


async def stored_order() -> WbOrder:
    """An order with every field away from its default."""
    rows = [WbBox(label="r0", n=1), WbBox(label="r1", n=2)]
    return await WbOrder(
        size=1, box=WbBox(label="x", n=2), rows=rows, flags=WbFlags(on=True)
    ).insert()


async def edit(client: Client, order: WbOrder, posted: dict[str, str]) -> WbOrder:
    """Post ``posted`` as the edit of ``order``; return the order as stored after it."""
    token = await csrf(client)
    response = await client.post(
        f"/admin/order/{order.id}/edit/", data={"csrf_token": token, **posted}
    )
    assert response.status == 200 and "?msg=saved" in str(response.url), await response.text()
    return await WbOrder.objects.get(id=order.id)


async def test_embedded_inputs_missing_from_the_post_keep_the_stored_values(
    orders: Client,
) -> None:
    order = await stored_order()
    saved = await edit(orders, order, {"size": "4"})
    assert saved.size == 4
    assert (saved.box, saved.rows) == (order.box, order.rows)
    # Unticked checkboxes are not posted: left out, they are unticked, as a browser sends them.
    assert saved.flags == WbFlags(on=False)


async def test_children_missing_from_the_post_keep_the_stored_values(orders: Client) -> None:
    order = await stored_order()
    posted = {"size": "1", "box.label": "y", "rows.0.label": "s0", "rows.1.n": "7"}
    saved = await edit(orders, order, posted)
    assert saved.box == WbBox(label="y", n=2)
    assert saved.rows == [WbBox(label="s0", n=1), WbBox(label="r1", n=7)]


async def test_inputs_posted_empty_still_clear_and_remove(orders: Client) -> None:
    """What a browser posts for a cleared form: every input, empty; the rows' removal boxes."""
    order = await stored_order()
    posted = {
        "size": "1",
        **{"box.label": "", "box.n": ""},
        **{"rows.0._delete": "on", "rows.0.label": "r0", "rows.0.n": "1"},
        **{"rows.1._delete": "on", "rows.1.label": "r1", "rows.1.n": "2"},
        **{"rows.2.label": "", "rows.2.n": ""},
    }
    saved = await edit(orders, order, posted)
    assert (saved.box, saved.rows) == (None, [])

