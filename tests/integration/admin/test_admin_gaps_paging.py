"""Keyset paging over a number column holding NaN and ±Infinity: the admin's own next and
previous links visit every row exactly once, in both orders and both directions (was: a
cursor at a NaN row wrote ``NaN`` into its JSON, and the rows after it, or a descending page's
NaN rows, were never shown); a hand-made cursor that is not strict JSON is a 400 naming it."""

from __future__ import annotations

import base64
import html
import math
import re
from typing import Any

import pytest

from odm import Document
from odm.contrib.admin import ModelAdmin
from odm.contrib.admin.listing import decode_cursor, encode_cursor
from odm.contrib.aiohttp.strict_json import strict_loads
from odm.drivers import DriverName
from tests.integration.admin.admin_refusals_app import serving_app
from tests.integration.admin.conftest import Client
from tests.integration.admin.support import ADMIN_HEADER

PER_PAGE = 2


class S20Reading(Document):
    """Readings whose number column may be NaN, infinite or missing."""

    label: str
    score: float | None = None

    class Meta:
        collection = "s20_readings"


SCORES: list[float | None] = [
    math.nan,
    math.inf,
    -math.inf,
    None,
    1.5,
    -2.0,
    0.0,
    math.nan,
    math.inf,
    1.5,
    None,
]
"""NaN, the infinities and null, each twice (ties on the column), among plain numbers."""


@pytest.fixture
async def readings(aiohttp_client: Any, odm_uri: str, odm_driver: DriverName) -> Client:
    """A client of the readings' admin (two rows a page), allowed in."""
    admin = ModelAdmin(
        S20Reading,
        name="reading",
        list_display=("id", "label", "score"),
        per_page=PER_PAGE,
    )
    app = serving_app(odm_uri, odm_driver, [S20Reading], [admin])
    client: Client = await aiohttp_client(app, headers={ADMIN_HEADER: "yes"})
    return client


def _link(text: str, id: str) -> str | None:
    found = re.search(rf'<a id="{id}" href="([^"]+)"', text)
    return html.unescape(found.group(1)) if found else None


def _ids(text: str) -> list[str]:
    return re.findall(r'<tr class="row">\s*<td><a href="/admin/reading/([^/]+)/"', text)


async def _walk(client: Client, start: str, link: str) -> list[str]:
    """The ids of every page from ``start`` on, following the ``link`` ("next"/"previous")."""
    seen: list[str] = []
    url: str | None = start
    for _ in range(3 * len(SCORES)):  # no endless loop if a cursor does not move on
        if url is None:
            return seen
        response = await client.get(url if url.startswith("/") else f"/admin/reading/{url}")
        assert response.status == 200, await response.text()
        text = await response.text()
        rows = _ids(text)
        seen.extend(rows if link == "next" else reversed(rows))
        url = _link(text, link)
    raise AssertionError(f"paging did not end: {seen}")


async def _last_page(client: Client, ordering: str) -> str:
    """The URL of the last page (found by following the next links)."""
    url = f"/admin/reading/?o={ordering}"
    while True:
        text = await (await client.get(url)).text()
        following = _link(text, "next")
        if following is None:
            return url
        url = f"/admin/reading/{following}"


@pytest.mark.parametrize("ordering", ["", "-"])
async def test_paging_visits_every_row_once_both_ways(readings: Client, ordering: str) -> None:
    docs = [S20Reading(label=f"r{index}", score=score) for index, score in enumerate(SCORES)]
    await S20Reading.objects.bulk_create(docs)
    every = sorted(str(doc.id) for doc in docs)
    forward = await _walk(readings, f"/admin/reading/?o={ordering}score", "next")
    assert sorted(forward) == every, forward
    backward = await _walk(readings, await _last_page(readings, f"{ordering}score"), "previous")
    assert backward == list(reversed(forward))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_cursor_of_a_non_finite_float_is_strict_json_and_reads_back(value: float) -> None:
    cursor = encode_cursor(value, "abc")
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    strict_loads(raw)  # JSON a browser's parser reads: no bare NaN or Infinity
    read, id = decode_cursor("after", cursor)
    assert id == "abc"
    assert (math.isnan(read) and math.isnan(value)) or read == value


AN_ID = "5f0000000000000000000000"
"""An id the list reads (an ObjectId's text): the cursors below are refused for their value."""


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


HAND_MADE = [
    '[NaN, "abc"]',
    '[Infinity, "abc"]',
    '[1, "abc", 2]',
    '{"a": 1, "a": 2}',
    '[{"float": "NaN", "float": "NaN"}, "abc"]',
    '[{"float": "nan"}, "abc"]',
    '[{"float": "NaN", "x": 1}, "abc"]',
    "[" * 1500 + "]" * 1500,
    "[" + "9" * 5000 + ', "abc"]',
]
"""Cursors no admin link holds: not strict JSON (NaN, Infinity, a key twice, too deep, too
long a number), or not a cursor's shape."""


async def test_a_hand_made_cursor_that_is_not_strict_json_is_a_400_naming_it(
    readings: Client,
) -> None:
    for raw in HAND_MADE:
        for parameter in ("after", "before"):
            cursor = _cursor(raw.replace("abc", AN_ID))
            response = await readings.get(
                "/admin/reading/", params={"o": "score", parameter: cursor}
            )
            assert response.status == 400, (raw[:40], parameter)
            assert response.content_type == "text/html"
            text = html.unescape(await response.text())
            assert f"parameter '{parameter}': not a cursor of this list" in text, raw[:40]
