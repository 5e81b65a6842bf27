"""Errors shown where their value is typed: a row's reading error at the row it is about when rows
are posted with gaps (as after a row above was removed) or out of order (was: at the posted
number, another row), and an error of an aliased field, embedded or in a row, at its input
(was: a general error naming the stored key)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import AliasChoices, Field

from odm import Document, Embedded
from odm.contrib.admin import ModelAdmin, writes
from odm.drivers import DriverName
from tests.integration.admin.admin_refusals_app import serving_app
from tests.integration.admin.conftest import Client, csrf
from tests.integration.admin.support import ADMIN_HEADER
from tests.integration.admin.test_admin_bad_input import field_errors, textarea


class RaRow(Embedded):
    """A row with a JSON input and a number."""

    sku: str = ""
    qty: int = 1
    data: dict[str, int] = {}


class RaPlace(Embedded):
    """An embedded model whose fields are stored under aliases."""

    zip_code: str = Field(default="", alias="zipCode", min_length=3)
    town: str = Field(default="", validation_alias=AliasChoices("town", "city"))
    count: int = Field(default=0, alias="n")
    meta: dict[str, int] = Field(default={}, alias="m")


class RaSheet(Document):
    """Rows, and aliased fields at the top, in an embedded model and in its rows."""

    name: str = Field(default="", alias="nm")
    total: int = Field(default=0, alias="t")
    rows: list[RaRow] = []
    place: RaPlace | None = None
    places: list[RaPlace] = []

    class Meta:
        collection = "ra_sheets"


@pytest.fixture
async def sheets(aiohttp_client: Any, odm_uri: str, odm_driver: DriverName) -> Client:
    """A client of the sheets' admin, allowed in."""
    app = serving_app(odm_uri, odm_driver, [RaSheet], [ModelAdmin(RaSheet, name="sheet")])
    client: Client = await aiohttp_client(app, headers={ADMIN_HEADER: "yes"})
    return client


def every_error(text: str) -> dict[str, list[str]]:
    """The messages of the form, by the input showing them."""
    return {name: field_errors(text, name) for name in re.findall(r'data-error="([^"]*)"', text)}


def general(text: str) -> list[str]:
    """The form's messages that belong to no one input (none when there is no such block)."""
    block = re.search(r'<div class="errors" id="errors">(.*?)</div>', text, re.S)
    return re.findall(r'<p class="error">([^<]*)<', block.group(1)) if block else []


async def test_a_row_error_is_shown_at_the_row_it_is_about_whatever_its_posted_number(
    sheets: Client,
) -> None:
    sheet = await RaSheet(rows=[RaRow(sku="a"), RaRow(sku="b"), RaRow(sku="c")]).insert()
    token = await csrf(sheets)
    path = f"/admin/sheet/{sheet.id}/edit/"
    # The first row removed: the second, with JSON that is not JSON, is the form's first row.
    removed = {"rows.0.sku": "a", "rows.0._delete": "on", "rows.1.sku": "b", "rows.1.data": "{b"}
    response = await sheets.post(path, data={"csrf_token": token, **removed})
    assert response.status == 400
    text = await response.text()
    assert list(every_error(text)) == ["rows.0.data"], every_error(text)
    assert every_error(text)["rows.0.data"][0].startswith("not valid JSON")
    assert textarea(text, "rows.0.data") == "{b" and textarea(text, "rows.1.data") == ""
    # Numbered with gaps and posted out of order: rows 7 then 3 are the rows 1 and 0.
    gaps = [("rows.7.sku", "late"), ("rows.7.data", "[1"), ("rows.3.sku", "x"), ("rows.3.qty", "q")]
    response = await sheets.post(path, data=[("csrf_token", token), *gaps])
    assert response.status == 400
    text = await response.text()
    shown = every_error(text)
    assert sorted(shown) == ["rows.0.qty", "rows.1.data"], shown
    assert shown["rows.1.data"][0].startswith("not valid JSON")
    assert textarea(text, "rows.1.data") == "[1" and 'name="rows.1.sku" value="late"' in text
    assert (await RaSheet.objects.get(id=sheet.id)).rows == sheet.rows


@pytest.mark.parametrize("page", ["add", "edit"])
async def test_an_aliased_field_error_is_shown_at_its_input_at_any_depth(
    sheets: Client, page: str
) -> None:
    sheet = await RaSheet(name="s").insert()
    token = await csrf(sheets)
    path = "/admin/sheet/add/" if page == "add" else f"/admin/sheet/{sheet.id}/edit/"
    huge = str(2**70)  # validates as an int, cannot be stored: the write names the stored key
    for typed, input_name in [
        ({"total": huge}, "total"),
        ({"place.zip_code": "123", "place.count": huge}, "place.count"),
        ({"places.0.zip_code": "123", "places.0.count": huge}, "places.0.count"),
        ({"place.zip_code": "123", "place.meta": '{"a\\u0000": 1}'}, "place.meta"),
        ({"places.0.zip_code": "1"}, "places.0.zip_code"),  # pydantic's own, by name
        ({"place.zip_code": "123", "place.town": "x" * 3, "place.count": "z"}, "place.count"),
    ]:
        response = await sheets.post(path, data={"csrf_token": token, "name": "s", **typed})
        assert response.status == 400, typed
        text = await response.text()
        assert list(every_error(text)) == [input_name], (typed, every_error(text), general(text))
        assert general(text) == [], typed
    assert [(s.name, s.total, s.place, s.places) for s in await RaSheet.objects.all()] == [
        ("s", 0, None, [])
    ]


@pytest.mark.parametrize(
    ("stored", "named"),
    [
        (("_id",), ("id",)),
        (("t",), ("total",)),
        (("total",), ("total",)),
        (("place", "n"), ("place", "count")),
        (("places", 2, "m", "k"), ("places", 2, "meta", "k")),
        (("places", "2", "zipCode"), ("places", "2", "zip_code")),
        (("places", "zipCode"), ("places", "zip_code")),  # an index's path: no position
        (("rows", 0, "data", "n"), ("rows", 0, "data", "n")),  # a JSON key is no field
        (("nope", "n"), ("nope", "n")),
    ],
)
def test_a_stored_location_is_named_by_the_fields(
    stored: tuple[int | str, ...], named: tuple[int | str, ...]
) -> None:
    assert writes.named_location(RaSheet, stored) == named
