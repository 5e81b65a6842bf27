"""The admin's JSON inputs read JSON as ``json_body`` does (one reader, ``strict_loads``): ``NaN``,
``Infinity`` and an object holding a key twice are refused at their input, naming the problem,
with what was typed kept and nothing written, at the top, in an embedded model and in a row
alike (was: ``NaN`` stored, and ``{"a": 1, "a": 2}`` stored as ``{"a": 2}``)."""

from __future__ import annotations

from typing import Any

import pytest

from odm.contrib.admin import ModelAdmin, forms
from odm.drivers import DriverName
from tests.integration.admin.admin_refusals_app import serving_app
from tests.integration.admin.conftest import Client, csrf
from tests.integration.admin.json_models import JsonBoard
from tests.integration.admin.support import ADMIN_HEADER
from tests.integration.admin.test_admin_bad_input import field_errors, textarea

REFUSED = [
    ('{"ratio": NaN}', "not valid JSON: NaN is not a JSON value"),
    ('{"a": [1, {"b": -Infinity}]}', "not valid JSON: -Infinity is not a JSON value"),
    ('{"a": 1, "a": 2}', 'not valid JSON: an object holds the key "a" twice'),
    ('{"a": {"b": 1, "c": 2, "b": 3}}', 'not valid JSON: an object holds the key "b" twice'),
]
"""JSON text Python's parser takes but that is not JSON or has no one meaning, and what the
form says of it."""

INPUTS = ["extra", "panel.extra", "knobs.0.extra"]
"""A JSON input at the top, in an embedded model, in a row."""


@pytest.fixture
async def boards(aiohttp_client: Any, odm_uri: str, odm_driver: DriverName) -> Client:
    """A client of the boards' admin, allowed in."""
    app = serving_app(odm_uri, odm_driver, [JsonBoard], [ModelAdmin(JsonBoard, name="board")])
    client: Client = await aiohttp_client(app, headers={ADMIN_HEADER: "yes"})
    return client


def posted(token: str, name: str, typed: str) -> dict[str, str]:
    """A board's form with ``typed`` in the JSON input ``name`` and ``{}`` in the others."""
    form = {"csrf_token": token, "name": "b", "knobs.0.label": "k"}
    form.update({input_name: "{}" for input_name in INPUTS})
    form[name] = typed
    return form


@pytest.mark.parametrize("page", ["add", "edit"])
async def test_json_that_is_not_json_or_ambiguous_is_refused_at_its_input(
    boards: Client, page: str
) -> None:
    stored = await JsonBoard(name="kept", extra={"a": 1}).insert()
    path = "/admin/board/add/" if page == "add" else f"/admin/board/{stored.id}/edit/"
    token = await csrf(boards)
    for name in INPUTS:
        for typed, message in REFUSED:
            response = await boards.post(path, data=posted(token, name, typed))
            assert response.status == 400, (name, typed)
            text = await response.text()
            assert field_errors(text, name) == [message], (name, typed)
            assert textarea(text, name) == typed  # kept as typed, to fix
    boards_stored = await JsonBoard.objects.all()
    assert [(b.name, b.extra, b.panel.extra, b.knobs) for b in boards_stored] == [
        ("kept", {"a": 1}, {}, [])
    ]


async def test_strict_json_still_takes_json(boards: Client) -> None:
    token = await csrf(boards)
    form = posted(token, "extra", '{"a": 1.5, "b": [null, {"c": "NaN"}]}')
    response = await boards.post("/admin/board/add/", data=form, allow_redirects=False)
    assert response.status == 303, await response.text()
    (board,) = await JsonBoard.objects.all()
    assert board.extra == {"a": 1.5, "b": [None, {"c": "NaN"}]}


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "not valid JSON: it nests too deeply to be read"),
        ("9" * 5000, "not valid JSON: a number has more than 4300 digits"),
        ("{oops", "not valid JSON: Expecting property name enclosed in double quotes: line 1"),
    ],
    ids=["deep", "long-number", "syntax"],
)
def test_the_form_reading_names_why_the_text_is_not_json(typed: str, message: str) -> None:
    specs = forms.describe(JsonBoard, ("id",))
    data, errors = forms.read_form(specs, {"name": "b", "extra": typed})
    assert errors["extra"].startswith(message), errors
    assert forms.unparsed_paths(data) == {"extra"}
