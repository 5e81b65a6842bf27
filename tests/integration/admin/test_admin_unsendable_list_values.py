"""A list parameter whose value the query layer accepts but BSON cannot send (a datetime past
the year 9999 once in UTC, a lone surrogate in a cursor's JSON) is a 400 page naming the
parameter. Was: a JSON body from the application's error middleware, naming nothing."""

from __future__ import annotations

import base64
import html
import json
import re
from urllib.parse import urlencode

import pytest
from bson import ObjectId

from tests.integration.admin.conftest import Client

LATE = "9999-12-31T23:59:59-14:00"
"""A datetime that pydantic reads, and that is 10000-01-01 in UTC."""


def cursor(value: object) -> str:
    """A list cursor of ``value`` (and some id), as the list writes them."""
    text = json.dumps([value, str(ObjectId())])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"published__gte": LATE}, "published__gte"),
        ({"published": LATE}, "published"),
        ({"o": "published", "after": cursor(LATE)}, "after"),
        ({"o": "title", "before": cursor("\ud800")}, "before"),
    ],
    ids=["lookup", "exact", "datetime-cursor", "surrogate-cursor"],
)
async def test_a_value_bson_cannot_send_is_a_bad_parameter(
    admin: Client, query: dict[str, str], parameter: str
) -> None:
    response = await admin.get(f"/admin/book/?{urlencode(query)}")
    assert response.status == 400
    assert response.content_type == "text/html"
    problem = re.search(r'id="problem">([^<]*)<', await response.text())
    assert problem is not None
    assert html.unescape(problem.group(1)).startswith(f"parameter {parameter!r}: "), problem
