"""Bad input and bad options: each gets a clear error naming its culprit, and nothing is
half-written (errors inside a JSON or one-per-line input, values that validate but cannot be
stored, an ``__isnull`` that is not a boolean, a search field that is not text, a migration
file that does not load)."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from pathlib import Path
from typing import Any

import pytest

from odm.contrib.admin import ModelAdmin, forms
from odm.contrib.admin.listing import ListError, list_query
from odm.drivers import DriverName
from tests.integration.admin.conftest import Client, csrf
from tests.integration.admin.support import (
    ADMIN_HEADER,
    AdminBook,
    AdminSetting,
    create_app,
    fresh_name,
)


def field_errors(text: str, name: str) -> list[str]:
    """The messages the form shows next to the input ``name``."""
    found = re.findall(rf'data-error="{re.escape(name)}">([^<]*)<', text)
    return [html.unescape(message) for message in found]


def textarea(text: str, name: str) -> str:
    """The text of the form's textarea ``name``."""
    found = re.search(rf'<textarea id="f-{re.escape(name)}"[^>]*>([^<]*)</textarea>', text)
    assert found is not None, f"no textarea {name!r}"
    return html.unescape(found.group(1))


def general_errors(text: str) -> list[str]:
    """The form's messages that belong to no one input."""
    block = re.search(r'<div class="errors" id="errors">(.*?)</div>', text, re.S)
    assert block is not None, "no errors on the page"
    return [html.unescape(m) for m in re.findall(r'<p class="error">([^<]*)<', block.group(1))]


@pytest.mark.parametrize(
    ("name", "typed", "message", "kept"),
    [
        ("data", '{"a": 1, "b": "many"}', "at b: Input should be a valid integer", '"many"'),
        ("ports", "80\nhttp", "item 2: Input should be a valid integer", "80\nhttp"),
    ],
    ids=["json", "lines"],
)
async def test_an_error_inside_a_json_or_lines_input_is_shown_at_that_input(
    admin: Client, name: str, typed: str, message: str, kept: str
) -> None:
    token = await csrf(admin, "/admin/setting/add/")
    form = {"csrf_token": token, "name": "s", "data": "{}", "ports": "", name: typed}
    response = await admin.post("/admin/setting/add/", data=form)
    assert response.status == 400
    text = await response.text()
    shown = field_errors(text, name)
    assert len(shown) == 1 and shown[0].startswith(message), shown
    assert kept in textarea(text, name)  # what was typed is kept, to fix
    assert await AdminSetting.objects.count() == 0


@pytest.mark.parametrize(
    ("loc", "readonly", "place"),
    [
        (("data", "a"), (), ("data", "at a: bad")),
        (("ports", 1), (), ("ports", "item 2: bad")),
        (("lines", 0, "qty"), (), ("lines.0.qty", "bad")),
        (("address", "city"), (), ("address.city", "bad")),
        # No input holds these: the form's general errors, led by where.
        (("address",), (), ("", "address: bad")),
        (("lines", 0), (), ("", "lines.0: bad")),
        (("lines",), (), ("", "lines: bad")),
        (("notes",), ("notes",), ("", "notes: bad")),
        (("nope", "x"), (), ("", "nope.x: bad")),
        ((), (), ("", "bad")),
    ],
    ids=repr,
)
def test_an_error_goes_to_the_input_holding_its_location_or_to_the_general_errors(
    loc: tuple[int | str, ...], readonly: tuple[str, ...], place: tuple[str, str]
) -> None:
    lists = [s for s in forms.describe(AdminSetting) if s.name in ("data", "ports")]
    specs = (*forms.describe(AdminBook, readonly), *lists)
    assert forms.error_place(loc, "bad", specs) == place


@pytest.mark.parametrize("page", ["add", "edit"])
async def test_a_value_that_validates_but_cannot_be_stored_is_a_form_error(
    admin: Client, page: str
) -> None:
    setting = await AdminSetting(name="s", data={"a": 1}).insert()
    book = await AdminBook(title="B", pages=1).insert()
    token = await csrf(admin)
    # A NUL in a key; a lone surrogate (which the write may not point at: then it is a general
    # error, naming the character); an int beyond 64 bits, on a form with a reference picker,
    # which reads after the write failed.
    for model, typed, culprit, why in [
        ("setting", {"name": "t", "data": json.dumps({"x\u0000y": 4})}, "data", "NULL byte"),
        ("setting", {"name": "t", "data": '{"\\ud800": 1}'}, "data", "\\ud800"),
        ("book", {"title": "B", "pages": str(2**70)}, "pages", "8-byte ints"),
    ]:
        stored = setting if model == "setting" else book
        path = f"/admin/{model}/add/" if page == "add" else f"/admin/{model}/{stored.id}/edit/"
        form = {"csrf_token": token, **typed}
        if model == "book" and page == "edit":
            form["_version"] = "0"
        response = await admin.post(path, data=form)
        assert response.status == 400, typed
        assert response.content_type == "text/html"
        text = await response.text()
        shown = field_errors(text, culprit) + general_errors(text)
        assert any("cannot be stored in BSON" in m and why in m for m in shown), (typed, shown)
    assert [(s.name, s.data) for s in await AdminSetting.objects.all()] == [("s", {"a": 1})]
    assert [(b.title, b.pages, b.version) for b in await AdminBook.objects.all()] == [("B", 1, 0)]


async def test_isnull_takes_a_boolean_word_and_refuses_anything_else(admin: Client) -> None:
    when = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    await AdminBook.objects.bulk_create(
        [AdminBook(title=f"b{i}", pages=1, published=when if i else None) for i in range(3)]
    )
    for value, count in [("true", 1), ("YES", 1), ("1", 1), ("off", 2), ("False", 2)]:
        text = await (await admin.get(f"/admin/book/?published__isnull={value}")).text()
        assert text.count('<tr class="row">') == count, value
    for value in ("x", "", "maybe"):
        response = await admin.get(f"/admin/book/?published__isnull={value}")
        assert response.status == 400, value
        assert "parameter 'published__isnull'" in html.unescape(await response.text()), value


@pytest.mark.parametrize("field", ["pages", "binding", "published", "address", "id"])
def test_a_search_field_that_is_not_text_is_refused_when_declared(field: str) -> None:
    with pytest.raises(ValueError, match=rf"ModelAdmin\(AdminBook\)\.search_fields: '{field}'"):
        ModelAdmin(AdminBook, search_fields=(field,))
    assert ModelAdmin(AdminBook, search_fields=("title", "tags")).searched() == ("title", "tags")


class PagesSearched(ModelAdmin):
    """Options that search a number after all, past the declaration's check."""

    def searched(self) -> tuple[str, ...]:
        """A field the search's lookup does not apply to."""
        return ("pages",)


def test_a_search_the_query_layer_refuses_is_a_bad_q_parameter() -> None:
    with pytest.raises(ListError, match="parameter 'q'"):
        list_query(PagesSearched(AdminBook), {"q": "3"})


async def test_a_migration_file_that_does_not_load_is_named_on_the_error_page(
    aiohttp_client: Any, odm_uri: str, odm_driver: DriverName, tmp_path: Path
) -> None:
    (tmp_path / "0001_first.py").write_text("steps = []\n")
    (tmp_path / "0002_broken.py").write_text("steps = [\n    1,\n  )\n")
    app = create_app(odm_uri, fresh_name(), odm_driver, migrations=tmp_path)
    client: Client = await aiohttp_client(app, headers={ADMIN_HEADER: "yes"})
    response = await client.get("/admin/_migrations/")
    assert response.status == 500
    assert response.content_type == "text/html"
    text = html.unescape(await response.text())
    assert f"{tmp_path / '0002_broken.py'}:3: syntax error" in text, text
