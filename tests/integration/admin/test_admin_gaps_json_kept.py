"""A JSON input the user did not change is not read again: the stored value stays as it is
(a NaN, an infinity, a datetime inside a ``dict[str, Any]``), at the top, in an embedded model
and in a row, so editing another field saves (was: the form showed ``NaN``, refused it on
saving, and the document could not be edited at all; a datetime came back a string). An input
the user edits is read strictly, as any JSON input."""

from __future__ import annotations

import datetime as dt
import html
import math
import re
from typing import Any

import pytest

import odm
from odm.contrib.admin import ModelAdmin
from odm.drivers import DriverName
from tests.integration.admin.admin_refusals_app import serving_app
from tests.integration.admin.conftest import Client
from tests.integration.admin.json_models import JsonBoard, JsonKnob, JsonPanel
from tests.integration.admin.support import ADMIN_HEADER
from tests.integration.admin.test_admin_bad_input import field_errors

WHEN = dt.datetime(2024, 5, 1, 10, 30, tzinfo=dt.UTC)


@pytest.fixture
async def gadgets(aiohttp_client: Any, odm_uri: str, odm_driver: DriverName) -> Client:
    """A client of the gadgets' admin, allowed in."""
    app = serving_app(odm_uri, odm_driver, [JsonBoard], [ModelAdmin(JsonBoard, name="gadget")])
    client: Client = await aiohttp_client(app, headers={ADMIN_HEADER: "yes"})
    return client


async def stored_gadget() -> JsonBoard:
    """A gadget whose JSON values hold what JSON cannot say (NaN, infinities, a datetime)."""
    return await JsonBoard(
        name="before",
        extra={"ratio": math.nan, "when": WHEN},
        panel=JsonPanel(extra={"top": math.inf}),
        knobs=[JsonKnob(label="a", extra={}), JsonKnob(label="b", extra={"low": -math.inf})],
    ).insert()


def as_posted(text: str) -> dict[str, str]:
    """The inputs of the form page ``text`` as a browser posts them (a textarea's line breaks
    as CRLF), without the checkboxes' and the pickers' own inputs."""
    form = {
        html.unescape(name): html.unescape(value)
        for name, value in re.findall(
            r'<input type="(?:hidden|text)"[^>]* name="([^"]+)" value="([^"]*)"', text
        )
    }
    for name, value in re.findall(
        r'<textarea id="f-[^"]+" name="([^"]+)"[^>]*>([^<]*)</textarea>', text
    ):
        form[html.unescape(name)] = html.unescape(value).replace("\n", "\r\n")
    return form


async def raw_gadget(id: Any) -> dict[str, Any]:
    """The gadget as stored."""
    found = await odm.get_database()["admin_json_boards"].find_one({"_id": id})
    assert found is not None
    return dict(found)


async def test_editing_another_field_keeps_json_values_as_stored(gadgets: Client) -> None:
    gadget = await stored_gadget()
    page = await gadgets.get(f"/admin/gadget/{gadget.id}/edit/")
    form = as_posted(await page.text())
    assert "NaN" in form["extra"] and "Infinity" in form["panel.extra"]
    form["name"] = "after"
    response = await gadgets.post(
        f"/admin/gadget/{gadget.id}/edit/", data=form, allow_redirects=False
    )
    assert response.status == 303, field_errors(await response.text(), "extra")
    raw = await raw_gadget(gadget.id)
    assert raw["name"] == "after"
    assert math.isnan(raw["extra"]["ratio"])
    assert raw["extra"]["when"] == WHEN  # still a date, not its text
    assert raw["panel"]["extra"] == {"top": math.inf}
    assert [k["extra"] for k in raw["knobs"]] == [{}, {"low": -math.inf}]


async def test_a_json_input_the_user_edits_is_read_strictly(gadgets: Client) -> None:
    gadget = await stored_gadget()
    page = await gadgets.get(f"/admin/gadget/{gadget.id}/edit/")
    form = as_posted(await page.text())
    form["name"] = "after"
    form["knobs.1.extra"] = '{"low": -Infinity, "more": 1}'
    response = await gadgets.post(f"/admin/gadget/{gadget.id}/edit/", data=form)
    assert response.status == 400
    text = await response.text()
    assert field_errors(text, "knobs.1.extra") == ["not valid JSON: -Infinity is not a JSON value"]
    assert field_errors(text, "extra") == []  # unchanged: not read, not refused
    raw = await raw_gadget(gadget.id)
    assert raw["name"] == "before"


async def test_a_row_removed_above_does_not_lend_its_value(gadgets: Client) -> None:
    gadget = await stored_gadget()
    page = await gadgets.get(f"/admin/gadget/{gadget.id}/edit/")
    form = as_posted(await page.text())
    form["knobs.0._delete"] = "on"
    response = await gadgets.post(
        f"/admin/gadget/{gadget.id}/edit/", data=form, allow_redirects=False
    )
    assert response.status == 303, await response.text()
    raw = await raw_gadget(gadget.id)
    assert [(k["label"], k["extra"]) for k in raw["knobs"]] == [("b", {"low": -math.inf})]
