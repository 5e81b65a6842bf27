"""An edit form posted back as a browser posts it keeps the document as stored, checkboxes too.

A browser posts nothing for an unticked checkbox: a row of a list whose inputs are all
checkboxes, all unticked, was absent from the POST and the list was read shorter (the row was
lost); an optional embedded model of checkboxes, all unticked, was read as ``None``; an
``Optional[bool]`` stored as ``None`` was an unticked checkbox, saved as ``False``. Now every
row and optional embedded model the form shows posts a mark (``rows.0._shown``) and an
optional bool is a select of three values. The property: GET the form of a random document,
post exactly what a browser posts for it, and the stored document is unchanged; flip one box,
and only that field changes.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from odm import Document, Embedded
from odm.contrib.admin import ModelAdmin
from odm.drivers import DriverName
from tests.integration.admin.ad23_browser_form import BrowserForm, chosen, flipped
from tests.integration.admin.admin_refusals_app import serving_app
from tests.integration.admin.conftest import Client
from tests.integration.admin.support import ADMIN_HEADER
from tests.properties import server_property

pytestmark = pytest.mark.odm_drivers("pymongo")  # the forms are the admin's, not the driver's


class Ad23Flags(Embedded):
    """A row of checkboxes only."""

    a: bool = False
    b: bool = True


class Ad23Leaf(Embedded):
    """An embedded model of one checkbox."""

    on: bool = False


class Ad23Row(Embedded):
    """A row whose only input is a checkbox of an embedded model."""

    leaf: Ad23Leaf = Ad23Leaf()


class Ad23Group(Embedded):
    """An embedded model holding a checkbox, an optional bool and a list of rows."""

    ready: bool = False
    sure: bool | None = None
    rows: list[Ad23Row] = []


class Ad23Panel(Document):
    """Bools, optional bools, a list of all-checkbox rows, nested models."""

    name: str = ""
    active: bool = False
    maybe: bool | None = None
    flags: list[Ad23Flags] = []
    group: Ad23Group = Ad23Group()
    spare: Ad23Flags | None = None

    class Meta:
        collection = "ad23_panels"


@pytest.fixture
async def panels(aiohttp_client: Any, odm_uri: str, odm_driver: DriverName) -> Client:
    """A client of the panels' admin, allowed in."""
    app = serving_app(odm_uri, odm_driver, [Ad23Panel], [ModelAdmin(Ad23Panel, name="panel")])
    client: Client = await aiohttp_client(app, headers={ADMIN_HEADER: "yes"})
    return client


maybe_bools = st.none() | st.booleans()
flag_rows = st.lists(st.builds(Ad23Flags, a=st.booleans(), b=st.booleans()), max_size=3)
group_rows = st.lists(st.builds(Ad23Row, leaf=st.builds(Ad23Leaf, on=st.booleans())), max_size=3)
groups = st.builds(Ad23Group, ready=st.booleans(), sure=maybe_bools, rows=group_rows)
panel_values = st.fixed_dictionaries(
    {
        "active": st.booleans(),
        "maybe": maybe_bools,
        "flags": flag_rows,
        "group": groups,
        "spare": st.none() | st.builds(Ad23Flags, a=st.booleans(), b=st.booleans()),
    }
)


def set_path(values: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    """``values`` (a model's dump) with the input ``name`` (``flags.1.a``) set to ``value``."""
    changed = copy.deepcopy(values)
    *parents, last = name.split(".")
    place: Any = changed
    for part in parents:
        place = place[int(part)] if part.isdigit() else place[part]
    place[last] = value
    return changed


def holds(values: dict[str, Any], name: str) -> bool:
    """Tell whether the input ``name`` is a field of ``values`` (not a row's removal box, nor
    one of the empty row offered for adding)."""
    place: Any = values
    for part in name.split("."):
        if part.isdigit() and isinstance(place, list) and int(part) < len(place):
            place = place[int(part)]
        elif isinstance(place, dict) and part in place:
            place = place[part]
        else:
            return False
    return True


async def form_of(client: Client, path: str) -> BrowserForm:
    """The edit form at ``path``, parsed."""
    response = await client.get(path)
    assert response.status == 200, await response.text()
    return BrowserForm(await response.text())


async def saved(client: Client, path: str, posted: list[tuple[str, str]]) -> None:
    """Post ``posted`` to ``path`` and check that it was saved."""
    response = await client.post(path, data=posted, allow_redirects=False)
    assert response.status == 303, await response.text()


ANSWERS = {"": None, "true": True, "false": False}
"""What each option of an optional bool's select stands for."""


UNTICKED = {
    "active": False,
    "maybe": True,
    "flags": [Ad23Flags(a=False, b=False)],
    "group": Ad23Group(sure=False, rows=[Ad23Row()]),
    "spare": Ad23Flags(a=False, b=False),
}
"""Every box unticked: a row, a row's embedded model, an optional model (each was lost)."""


@server_property(12)
@given(values=panel_values, pick=st.integers(min_value=0))
@example(values=UNTICKED, pick=0)
async def test_a_form_posted_back_as_shown_keeps_the_document_and_one_box_changes_one_field(
    panels: Client, values: dict[str, Any], pick: int
) -> None:
    panel = await Ad23Panel(**values).insert()
    before = panel.model_dump()
    path = f"/admin/panel/{panel.id}/edit/"
    form = await form_of(panels, path)
    await saved(panels, path, form.posted)
    assert (await Ad23Panel.objects.get(id=panel.id)).model_dump() == before
    # Flip one of the form's fields (a box, or another answer of an optional bool).
    toggles = [name for name in [*form.boxes, *form.selects] if holds(before, name)]
    name = toggles[pick % len(toggles)]
    form = await form_of(panels, path)
    if name in form.boxes:
        ticked = not form.boxes[name]
        await saved(panels, path, flipped(form.posted, name, ticked))
        expected = set_path(before, name, ticked)
    else:
        now = dict(form.posted)[name]
        other = next(option for option in ANSWERS if option != now)
        await saved(panels, path, chosen(form.posted, name, other))
        expected = set_path(before, name, ANSWERS[other])
    assert (await Ad23Panel.objects.get(id=panel.id)).model_dump() == expected, name


async def test_a_row_of_unticked_boxes_can_still_be_removed_and_added(panels: Client) -> None:
    panel = await Ad23Panel(flags=[Ad23Flags(a=False, b=False), Ad23Flags(a=True)]).insert()
    path = f"/admin/panel/{panel.id}/edit/"
    form = await form_of(panels, path)
    assert "flags.0._delete" in form.boxes and "flags.2._delete" not in form.boxes
    # Remove the first row (all unticked); tick a box of the empty row to add one.
    posted = flipped(flipped(form.posted, "flags.0._delete", True), "flags.2.a", True)
    await saved(panels, path, posted)
    stored = await Ad23Panel.objects.get(id=panel.id)
    assert stored.flags == [Ad23Flags(a=True), Ad23Flags(a=True, b=False)]
    # The empty row left empty adds nothing.
    await saved(panels, path, (await form_of(panels, path)).posted)
    assert (await Ad23Panel.objects.get(id=panel.id)).flags == stored.flags


async def test_an_optional_bool_answers_none_true_or_false_and_nothing_else(
    panels: Client,
) -> None:
    panel = await Ad23Panel(maybe=None).insert()
    path = f"/admin/panel/{panel.id}/edit/"
    form = await form_of(panels, path)
    assert form.selects["maybe"] == ["", "true", "false"]
    response = await panels.post(path, data=chosen(form.posted, "maybe", "perhaps"))
    assert response.status == 400
    assert "valid boolean" in await response.text()
    assert (await Ad23Panel.objects.get(id=panel.id)).maybe is None
    await saved(panels, path, chosen(form.posted, "maybe", "false"))
    assert (await Ad23Panel.objects.get(id=panel.id)).maybe is False


async def test_a_row_marker_that_is_not_the_forms_is_refused_by_name(panels: Client) -> None:
    panel = await Ad23Panel(flags=[Ad23Flags(a=True)]).insert()
    path = f"/admin/panel/{panel.id}/edit/"
    form = await form_of(panels, path)
    posted = [(n, "$set" if n == "flags.0._shown" else v) for n, v in form.posted]
    response = await panels.post(path, data=posted)
    assert response.status == 400
    assert "flags.0._shown" in await response.text()
    assert (await Ad23Panel.objects.get(id=panel.id)).flags == [Ad23Flags(a=True)]
