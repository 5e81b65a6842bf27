"""The admin's write path against a hostile logged-in user, and the floats JSON has no words
for: a NaN or an infinity the form shows (``nan``, ``inf``) is saved back as it was; a posted
name that is not an input of the form (a path, an operator, a row out of range, a name sent
twice, the id or the version) is a 400 naming it; an operator-shaped JSON value is a value; a
hostile id in the URL is a 404 naming it. Nothing is written by a refused request."""

from __future__ import annotations

import html
import math
from typing import Any
from urllib.parse import quote, unquote, urlencode

import aiohttp
import pytest
from yarl import URL

import odm
from odm import Document, Embedded
from odm.contrib.admin import ModelAdmin
from odm.drivers import DriverName
from tests.integration.admin.ad23_browser_form import BrowserForm
from tests.integration.admin.admin_refusals_app import serving_app
from tests.integration.admin.conftest import Client
from tests.integration.admin.support import ADMIN_HEADER

FORM = "application/x-www-form-urlencoded"

pytestmark = pytest.mark.odm_drivers("pymongo")  # the forms are the admin's, not the driver's


class Ad23Item(Embedded):
    """A row of a list."""

    x: int = 0
    on: bool = False


class Ad23Gauge(Document):
    """Floats alone, optional and one per line, rows, a JSON value, under a lock."""

    name: str = ""
    ratio: float = 0.0
    limit: float | None = None
    samples: list[float] = []
    rows: list[Ad23Item] = []
    extra: dict[str, Any] = {}

    class Meta:
        collection = "ad23_gauges"
        optimistic_lock = True


@pytest.fixture
async def gauges(aiohttp_client: Any, odm_uri: str, odm_driver: DriverName) -> Client:
    """A client of the gauges' admin, allowed in."""
    app = serving_app(odm_uri, odm_driver, [Ad23Gauge], [ModelAdmin(Ad23Gauge, name="gauge")])
    client: Client = await aiohttp_client(app, headers={ADMIN_HEADER: "yes"})
    return client


async def raw(id: Any) -> dict[str, Any]:
    """The gauge as stored, without its version."""
    found = await odm.get_database()["ad23_gauges"].find_one({"_id": id}, {"version": 0})
    assert found is not None
    return dict(found)


def same_floats(left: Any, right: Any) -> bool:
    """Tell whether two stored values are the same, NaN equal to NaN and ``-0.0`` not ``0.0``."""
    if isinstance(left, float) and isinstance(right, float):
        return repr(left) == repr(right)
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same_floats(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(same_floats, left, right))
    return bool(left == right)


async def form_of(client: Client, gauge: Ad23Gauge) -> list[tuple[str, str]]:
    """What a browser posts for the gauge's edit form, unchanged."""
    response = await client.get(f"/admin/gauge/{gauge.id}/edit/")
    assert response.status == 200
    return BrowserForm(await response.text()).posted


async def test_nan_and_infinities_shown_by_the_form_are_saved_back_as_they_were(
    gauges: Client,
) -> None:
    odd = [math.nan, math.inf, -math.inf, -0.0, 1e300, 0.1]
    gauge = await Ad23Gauge(ratio=math.nan, limit=-math.inf, samples=odd).insert()
    before = await raw(gauge.id)
    posted = await form_of(gauges, gauge)
    assert ("ratio", "nan") in posted and ("limit", "-inf") in posted
    response = await gauges.post(
        f"/admin/gauge/{gauge.id}/edit/", data=posted, allow_redirects=False
    )
    assert response.status == 303, await response.text()
    assert same_floats(await raw(gauge.id), before), await raw(gauge.id)


async def test_a_stored_document_that_does_not_fit_the_model_is_named_on_every_page(
    gauges: Client,
) -> None:
    """A Decimal NaN written by another program, or any value the model refuses, cannot be
    shown as a value: each page naming it (the list too) says which document and field."""
    found = await odm.get_database()["ad23_gauges"].insert_one({"ratio": "high", "version": 0})
    for path in ("", f"{found.inserted_id}/", f"{found.inserted_id}/edit/"):
        response = await gauges.get(f"/admin/gauge/{path}")
        assert response.status == 500, path
        assert response.content_type == "text/html", path
        text = html.unescape(await response.text())
        assert f"Ad23Gauge document _id=ObjectId('{found.inserted_id}')" in text, path
        assert "ratio: Input should be a valid number" in text, path


HOSTILE_NAMES = [
    ("a.b", "the model has no such field"),
    ("$set", "the model has no such field"),
    ("rows.99999999.x", "expected a row number"),
    ("rows.-1.x", "expected a row number"),
    ("rows-0.x", "the model has no such field"),
    ("rows.0.__class__", "the embedded model has no such field"),
    ("rows.0.x.y", "the field has no parts"),
    ("name\x00", "the model has no such field"),
    ("n" * 100_000, "the model has no such field"),
    ("id", "the field is read-only"),
    ("_id", "the model has no such field"),
    ("version", "the field is read-only"),
    ("name", "sent more than once"),
    ("rows.0._shown", "sent more than once"),
    ("csrf_token", "sent more than once"),
]


async def test_a_name_that_is_no_input_of_the_form_is_refused_by_name(gauges: Client) -> None:
    gauge = await Ad23Gauge(name="g", rows=[Ad23Item(x=1)]).insert()
    before = await raw(gauge.id)
    form = await form_of(gauges, gauge)
    for name, message in HOSTILE_NAMES:
        # The name posted again, after the form's inputs (the token: the right one, twice).
        value = dict(form).get(name, "1")
        response = await gauges.post(
            f"/admin/gauge/{gauge.id}/edit/",
            data=urlencode([*form, (name, value)]),
            headers={"Content-Type": FORM},
        )
        assert response.status == 400, name[:80]
        text = html.unescape(await response.text())
        shown = repr(name) if len(name) < 80 else f"'{name[:80]}'... (100000 characters)"
        assert f"{shown}: {message}" in text, (name[:80], text[-800:])
        assert len(text) < 20_000  # a long name is named, not echoed whole
    # A value sent as a file, with the form's own inputs otherwise.
    upload = aiohttp.FormData([(n, v) for n, v in form if n != "name"])
    upload.add_field("name", b"x", filename="name.txt")
    response = await gauges.post(f"/admin/gauge/{gauge.id}/edit/", data=upload)
    assert response.status == 400
    assert "'name': a file was sent" in html.unescape(await response.text())
    assert await raw(gauge.id) == before


async def test_an_operator_shaped_json_value_is_stored_as_a_value(gauges: Client) -> None:
    gauge = await Ad23Gauge(name="g", extra={"k": 1}).insert()
    decoy = await Ad23Gauge(name="decoy").insert()
    operators = {"$ne": None, "a.b": {"$set": {"name": "x"}}}
    posted = [
        (n, '{"$ne": null, "a.b": {"$set": {"name": "x"}}}' if n == "extra" else v)
        for n, v in await form_of(gauges, gauge)
    ]
    response = await gauges.post(
        f"/admin/gauge/{gauge.id}/edit/", data=posted, allow_redirects=False
    )
    assert response.status == 303, await response.text()
    # A literal key of the value, as the model lets code store it: read back as it was typed.
    assert (await raw(gauge.id))["extra"] == operators
    assert (await Ad23Gauge.objects.get(id=gauge.id)).extra == operators
    assert (await raw(gauge.id))["name"] == "g"
    assert (await raw(decoy.id))["name"] == "decoy"


HOSTILE_IDS = ['{"$ne":1}', "{}", "$where", "a.b", "%2e%2e"]
"""Ids an attacker types in a URL; percent-encoded too, as a browser sends them (a NUL too)."""


async def test_a_hostile_id_in_the_url_is_a_404_naming_it(gauges: Client) -> None:
    gauge = await Ad23Gauge(name="g").insert()
    posted = await form_of(gauges, gauge)
    for segment in [*HOSTILE_IDS, *(quote(id, safe="") for id in [*HOSTILE_IDS, "\x00"])]:
        for page in ("edit/", "delete/"):
            url = URL(f"/admin/gauge/{segment}/{page}", encoded=True)
            response = await gauges.post(url, data=posted)
            assert response.status == 404, (segment, page)
            named = f"{unquote(segment)!r} is not an id of Ad23Gauge"
            assert named in html.unescape(await response.text()), (segment, page)
    assert [(g.id, g.name) for g in await Ad23Gauge.objects.all()] == [(gauge.id, "g")]


class Ad23Slug(Document):
    """A document named by any text."""

    id: str
    title: str = ""

    class Meta:
        collection = "ad23_slugs"


async def test_a_text_id_holding_braces_has_its_pages(
    aiohttp_client: Any, odm_uri: str, odm_driver: DriverName
) -> None:
    app = serving_app(odm_uri, odm_driver, [Ad23Slug], [ModelAdmin(Ad23Slug, name="slug")])
    client: Client = await aiohttp_client(app, headers={ADMIN_HEADER: "yes"})
    slug = await Ad23Slug(id='{"$ne":1}', title="t").insert()
    path = f"/admin/slug/{quote(slug.id, safe='')}/edit/"
    posted = chosen_title(BrowserForm(await (await client.get(path)).text()).posted, "u")
    response = await client.post(URL(path, encoded=True), data=posted, allow_redirects=False)
    assert response.status == 303, await response.text()
    assert [(s.id, s.title) for s in await Ad23Slug.objects.all()] == [('{"$ne":1}', "u")]


def chosen_title(posted: list[tuple[str, str]], title: str) -> list[tuple[str, str]]:
    """``posted`` with the title typed over."""
    return [(n, title if n == "title" else v) for n, v in posted]
