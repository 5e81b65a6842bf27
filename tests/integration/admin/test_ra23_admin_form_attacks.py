"""The admin's form handling under attack: rows' marks, removal boxes, an ``Optional[bool]``'s
select, a stale form, hostile ids in links and routes, the page of a stored document that does
not fit its model, and the order of the refusals (the guard first).

A form posted back as the browser shows it keeps the document as stored (a select of an enum in
the empty row offered for adding, or in an optional model shown as ``None``, posted its first
choice, so each save added a row of defaults, or set the model; an optional model with no
fields, stored, was shown as ``None`` and lost). A value no input of the form posts (a mark but
``yes`` or empty, a checkbox but ``on``: ``_delete=no`` removed its row; ``yes`` or ``1`` for an
``Optional[bool]``) is refused by name. The stored document's page names at most 20 fields,
each cut at 200 characters (it was as long as the document's bad entries).
"""

from __future__ import annotations

import enum
import html
import re
import uuid
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from yarl import URL

import odm
from odm import Document, Embedded
from odm.contrib.admin import ModelAdmin
from odm.drivers import DriverName
from tests.integration.admin.ad23_browser_form import BrowserForm, chosen, flipped
from tests.integration.admin.admin_refusals_app import serving_app
from tests.integration.admin.conftest import Client
from tests.integration.admin.support import ADMIN_HEADER
from tests.properties import server_property

pytestmark = pytest.mark.odm_drivers("pymongo")  # the forms are the admin's, not the driver's


class Ra23Kind(enum.Enum):
    """An enum: a select with no empty option when the field is not optional."""

    A = "a"
    B = "b"


class Ra23Nothing(Embedded):
    """An embedded model without fields: stored, it is a value all the same."""


class Ra23Leaf(Embedded):
    """A row of a row: a checkbox, an enum and a number."""

    on: bool = False
    kind: Ra23Kind = Ra23Kind.A
    n: int = 0


class Ra23Row(Embedded):
    """A row holding a list of rows, an optional model and an optional bool."""

    label: str = ""
    leaves: list[Ra23Leaf] = []
    opt: Ra23Leaf | None = None
    sure: bool | None = None


class Ra23Sheet(Document):
    """Lists of lists of models, optional models (one without fields), a mapping."""

    id: str
    maybe: bool | None = None
    rows: list[Ra23Row] = []
    spare: Ra23Leaf | None = None
    nothing: Ra23Nothing | None = None
    counts: dict[str, int] = {}

    class Meta:
        collection = "ra23_sheets"


class Ra23Locked(Document):
    """Rows under an optimistic lock."""

    rows: list[Ra23Row] = []

    class Meta:
        collection = "ra23_locked"
        optimistic_lock = True


@pytest.fixture
async def sheets(aiohttp_client: Any, odm_uri: str, odm_driver: DriverName) -> Client:
    """A client of the sheets' admin, allowed in."""
    admins = [ModelAdmin(Ra23Sheet, name="sheet"), ModelAdmin(Ra23Locked, name="locked")]
    app = serving_app(odm_uri, odm_driver, [Ra23Sheet, Ra23Locked], admins)
    client: Client = await aiohttp_client(app, headers={ADMIN_HEADER: "yes"})
    return client


def edit_path(id: object, model: str = "sheet") -> str:
    """The edit page of the document ``id``, its id quoted as the admin's links quote it."""
    return f"/admin/{model}/{quote(str(id), safe='')}/edit/"


async def form_of(client: Client, path: str) -> list[tuple[str, str]]:
    """What a browser posts for the form at ``path``, unchanged."""
    response = await client.get(URL(path, encoded=True))
    assert response.status == 200, await response.text()
    return BrowserForm(await response.text()).posted


async def post(client: Client, path: str, posted: Any) -> tuple[int, str]:
    """Post ``posted`` to ``path``: the status and the page's text (unescaped)."""
    response = await client.post(URL(path, encoded=True), data=posted, allow_redirects=False)
    return response.status, html.unescape(await response.text())


async def stored(id: str) -> dict[str, Any]:
    """The sheet ``id`` as the model reads it."""
    return (await Ra23Sheet.objects.get(id=id)).model_dump()


leaves = st.builds(Ra23Leaf, on=st.booleans(), kind=st.sampled_from(Ra23Kind), n=st.integers(-3, 3))
rows = st.builds(
    Ra23Row,
    label=st.text(alphabet="a <&\"'", max_size=3),
    leaves=st.lists(leaves, max_size=2),
    opt=st.none() | leaves,
    sure=st.none() | st.booleans(),
)
sheet_values = st.fixed_dictionaries(
    {
        "maybe": st.none() | st.booleans(),
        "rows": st.lists(rows, max_size=2),
        "spare": st.none() | leaves,
        "nothing": st.none() | st.just(Ra23Nothing()),
        "counts": st.dictionaries(
            st.text(alphabet="ab<\"' ", max_size=3), st.integers(-9, 9), max_size=2
        ),
    }
)


@server_property(10)
@given(values=sheet_values)
@example(values={"rows": [Ra23Row()], "nothing": Ra23Nothing()})  # each lost or grew
async def test_a_form_posted_back_unchanged_keeps_lists_of_lists_optional_models_and_mappings(
    sheets: Client, values: dict[str, Any]
) -> None:
    sheet = await Ra23Sheet(id=uuid.uuid4().hex, **values).insert()
    before = await stored(sheet.id)
    status, text = await post(
        sheets, edit_path(sheet.id), await form_of(sheets, edit_path(sheet.id))
    )
    assert status == 303, text
    assert await stored(sheet.id) == before


def replaced(posted: list[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    """``posted`` with the input ``name`` posting ``value`` (added when the form has none)."""
    if any(n == name for n, _ in posted):
        return chosen(posted, name, value)
    return [*posted, (name, value)]


HOSTILE_VALUES = [
    ("rows.0._delete", "no", "a ticked checkbox posts 'on'"),  # removed its row
    ("rows.0._delete", "", "a ticked checkbox posts 'on'"),
    ("spare._delete", "false", "a ticked checkbox posts 'on'"),  # set it to None
    ("rows.0.leaves.0.on", "false", "a ticked checkbox posts 'on'"),  # ticked it
    ("rows.0._shown", "YES", "the form's mark is 'yes' or empty"),
    ("rows.0._shown", "yes ", "the form's mark is 'yes' or empty"),
    ("rows.0._shown", "<script>alert(1)</script>", "the form's mark is 'yes' or empty"),
    ("rows.1._shown", "1", "the form's mark is 'yes' or empty"),  # the empty row's
    ("rows.99999._shown", "yes", "expected a row number"),
]


async def test_a_mark_or_a_box_posting_what_the_form_never_posts_is_refused_by_name(
    sheets: Client,
) -> None:
    sheet = await Ra23Sheet(
        id="s", rows=[Ra23Row(label="r", leaves=[Ra23Leaf(n=1)])], spare=Ra23Leaf(on=True)
    ).insert()
    before = await stored(sheet.id)
    form = await form_of(sheets, edit_path(sheet.id))
    for name, value, message in HOSTILE_VALUES:
        status, text = await post(sheets, edit_path(sheet.id), replaced(form, name, value))
        assert status == 400, (name, value)
        assert f"{name!r}: {message}" in text, (name, value)
        assert "<script>" not in text
    # Inside a row being removed too: its values are thrown away, but they are not the form's.
    removing = replaced(replaced(form, "rows.0._delete", "on"), "rows.0.opt._shown", "$set")
    status, text = await post(sheets, edit_path(sheet.id), removing)
    assert (status, "'rows.0.opt._shown': the form's mark" in text) == (400, True)
    assert await stored(sheet.id) == before


async def test_an_optional_bool_takes_its_three_options_and_nothing_pydantic_would_take(
    sheets: Client,
) -> None:
    sheet = await Ra23Sheet(id="s", rows=[Ra23Row(sure=False)]).insert()
    form = await form_of(sheets, edit_path(sheet.id))
    for name in ("maybe", "rows.0.sure"):
        for value in ("YES", "1", "on", "true "):
            status, text = await post(sheets, edit_path(sheet.id), chosen(form, name, value))
            assert status == 400, (name, value)
            shown_at = re.findall(rf'data-error="{re.escape(name)}">([^<]*)<', text)
            assert shown_at == [
                "Input should be a valid boolean: one of \u2014, yes or no ('', 'true', 'false')"
            ], (name, value, shown_at)
            # Shown again with no option chosen (nothing says yes for it).
            assert chosen(BrowserForm(text).posted, name, "") == BrowserForm(text).posted
        status, _ = await post(sheets, edit_path(sheet.id), [*form, (name, "true")])
        assert status == 400  # repeated: refused by name (check_names), not read twice
    assert (await Ra23Sheet.objects.get(id="s")).rows[0].sure is False
    for value, answer in (("true", True), ("", None), ("false", False)):
        status, text = await post(sheets, edit_path(sheet.id), chosen(form, "rows.0.sure", value))
        assert status == 303, text
        assert (await Ra23Sheet.objects.get(id="s")).rows[0].sure is answer


async def test_marks_without_rows_and_removal_boxes_everywhere(sheets: Client) -> None:
    """What marks and boxes do that the form's own use does not show: a mark is the form's
    word that it showed a value there, so a script's mark alone keeps (or adds) a row or an
    optional model of defaults and unticked boxes; a removal box removes, the empty row's too."""
    sheet = await Ra23Sheet(id="s", rows=[Ra23Row(label="r0"), Ra23Row(label="r1")]).insert()
    form = await form_of(sheets, edit_path(sheet.id))
    # A mark alone for a row past the list (and for the model stored as None): defaults.
    posted = replaced(replaced(form, "rows.5._shown", "yes"), "spare._shown", "yes")
    assert (await post(sheets, edit_path(sheet.id), posted))[0] == 303
    after = await Ra23Sheet.objects.get(id="s")
    assert [r.label for r in after.rows] == ["r0", "r1", ""]
    assert after.spare == Ra23Leaf()
    # Every row's box ticked, the empty row filled in: the new row alone.
    form = await form_of(sheets, edit_path(sheet.id))
    for index in range(3):
        form = flipped(form, f"rows.{index}._delete", True)
    assert ("rows.3._shown", "") in form
    assert (await post(sheets, edit_path(sheet.id), chosen(form, "rows.3.label", "new")))[0] == 303
    assert [r.label for r in (await Ra23Sheet.objects.get(id="s")).rows] == ["new"]
    # The empty row filled in and its (absent) box ticked by a script: not added.
    form = await form_of(sheets, edit_path(sheet.id))
    posted = flipped(chosen(form, "rows.1.label", "x"), "rows.1._delete", True)
    assert (await post(sheets, edit_path(sheet.id), posted))[0] == 303
    assert [r.label for r in (await Ra23Sheet.objects.get(id="s")).rows] == ["new"]


async def test_a_stale_form_rewrites_the_rows_as_shown_without_a_lock_and_is_refused_with_one(
    sheets: Client,
) -> None:
    sheet = await Ra23Sheet(id="s", rows=[Ra23Row(label=x) for x in "abc"]).insert()
    locked = await Ra23Locked(rows=[Ra23Row(label=x) for x in "abc"]).insert()
    stale = await form_of(sheets, edit_path(sheet.id))
    stale_locked = await form_of(sheets, edit_path(locked.id, "locked"))
    # Meanwhile someone removes row b and adds row d.
    await Ra23Sheet.objects.filter(id="s").update(rows=[Ra23Row(label=x) for x in "acd"])
    locked.rows = [Ra23Row(label=x) for x in "acd"]
    await locked.save()
    # Without a lock the last save wins, rows too: as the stale page showed them (b is back,
    # d is gone), not shifted (the stale row 1 is b, not the stored row 1, c).
    status, _ = await post(sheets, edit_path(sheet.id), chosen(stale, "rows.2.label", "C"))
    assert status == 303
    assert [r.label for r in (await Ra23Sheet.objects.get(id="s")).rows] == ["a", "b", "C"]
    status, text = await post(sheets, edit_path(locked.id, "locked"), stale_locked)
    assert status == 409, text
    assert [r.label for r in (await Ra23Locked.objects.get(id=locked.id)).rows] == list("acd")


async def test_the_page_of_a_stored_document_that_does_not_fit_is_escaped_and_bounded(
    sheets: Client,
) -> None:
    hostile = '</a><script>alert(1)</script>"' + "i" * 5_000  # a URL holds it
    bad = {f'<script>"{i}' + "k" * 1_000: "NaN" for i in range(500)}
    await odm.get_database()["ra23_sheets"].insert_one({"_id": hostile, "counts": bad})
    for path in ("/admin/sheet/", edit_path(hostile), edit_path(hostile)[: -len("edit/")]):
        response = await sheets.get(URL(path, encoded=True))
        assert response.status == 500, path[:80]
        page = await response.text()
        assert len(page) < 12_000, (path[:80], len(page))
        assert "<script>" not in page and 'alert(1)</script>"' not in page
        text = html.unescape(page)
        assert "Ra23Sheet document _id='</a><script>alert(1)</script>\"iii" in text
        assert f"... ({len(f'Ra23Sheet document _id={hostile!r}')} characters) does not fit" in text
        assert f"counts.{next(iter(bad))[:193]}... (1017 characters): Input should" in text
        assert "; and 480 more" in text


HOSTILE_IDS = [
    "</a><script>alert(1)</script>",
    '" onclick="alert(1)',
    "javascript:alert(1)",
    "../x",
]


async def test_hostile_ids_are_escaped_and_quoted_in_every_link_and_reach_no_other_route(
    sheets: Client,
) -> None:
    for id in HOSTILE_IDS:
        await Ra23Sheet(id=id).insert()
    await Ra23Sheet(id="x").insert()  # what "../x" must not reach
    pages = ["/admin/sheet/"]
    for id in HOSTILE_IDS:
        segment = quote(id, safe="")
        pages += [f"/admin/sheet/{segment}/{page}" for page in ("", "edit/", "delete/")]
    for path in pages:
        response = await sheets.get(URL(path, encoded=True))
        assert response.status == 200, path
        page = await response.text()
        assert "<script>" not in page and 'onclick="' not in page, path
        for link in re.findall(r'(?:href|action)="([^"]*)"', page):
            # Each id is one quoted segment of the admin's own paths (the Back link aside).
            assert link.startswith(("/admin/", "?", "javascript:history.back()")), (path, link)
            assert not re.search(r"[<>\"' ]|/\.\./|javascript:alert", link), (path, link)
    for id in HOSTILE_IDS:
        form = await form_of(sheets, edit_path(id))
        assert (await post(sheets, edit_path(id), chosen(form, "maybe", "true")))[0] == 303
        assert (await Ra23Sheet.objects.get(id=id)).maybe is True
    assert (await Ra23Sheet.objects.get(id="x")).maybe is None
    # A path-like id in the route is one id: no other page, no other document.
    response = await sheets.get(URL("/admin/sheet/..%2Fx/edit/", encoded=True))
    assert "<h1>Edit Ra23Sheet ../x</h1>" in await response.text()
    for segment in ("..%2F..%2Fsheet", "%2E%2E%2Fy", "..%2F"):
        response = await sheets.get(URL(f"/admin/sheet/{segment}/edit/", encoded=True))
        assert response.status == 404, segment
    # The ids a browser reads as the path's dots (documented): their forms post to no route.
    token = dict(await form_of(sheets, edit_path("x")))["csrf_token"]
    for id in (".", ".."):
        await Ra23Sheet(id=id).insert()
        for page in ("edit/", "delete/"):
            posted = [("csrf_token", token), ("maybe", "true")]
            response = await sheets.post(f"/admin/sheet/{id}/{page}", data=posted)
            assert response.status == 405, (id, page)
    assert await Ra23Sheet.objects.filter(id__in=[".", "..", "x"], maybe=None).count() == 3


async def test_a_post_without_the_token_is_refused_before_its_fields_are_read(
    sheets: Client,
) -> None:
    sheet = await Ra23Sheet(id="s", rows=[Ra23Row(label="r")]).insert()
    before = await stored(sheet.id)
    hostile = [("rows.0._shown", "bad"), ("maybe", "1"), ("maybe", "2"), ("n" * 200, "x")]
    upload = aiohttp.FormData(hostile)
    upload.add_field("rows.0.label", b"x", filename="label.txt")
    for posted in (hostile, upload, [("csrf_token", "forged"), *hostile]):
        status, text = await post(sheets, edit_path(sheet.id), posted)
        assert (status, "CSRF token is missing or wrong" in text) == (403, True)
        assert "rows.0" not in text and "maybe" not in text and "nnnn" not in text
    # Refused by authorize: a page naming nothing at all.
    response = await sheets.post(edit_path(sheet.id), data=hostile, headers={ADMIN_HEADER: "no"})
    text = await response.text()
    assert (response.status, "rows.0" in text, "CSRF" in text) == (403, False, False)
    assert await stored(sheet.id) == before


async def test_the_form_posted_as_multipart_without_files_is_saved(sheets: Client) -> None:
    sheet = await Ra23Sheet(id="s", rows=[Ra23Row(label="r")]).insert()
    form = await form_of(sheets, edit_path(sheet.id))
    multipart = aiohttp.FormData(chosen(form, "rows.0.label", "m"), default_to_multipart=True)
    response = await sheets.post(edit_path(sheet.id), data=multipart, allow_redirects=False)
    assert response.request_info.headers["Content-Type"].startswith("multipart/form-data")
    assert response.status == 303, await response.text()
    assert [r.label for r in (await Ra23Sheet.objects.get(id="s")).rows] == ["m"]
