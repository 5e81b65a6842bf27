"""The admin's form reading keeps the text of a JSON input that is not JSON, wherever the input
is (a field, a field of an embedded model, a field of a row of an embedded list)."""

from __future__ import annotations

from typing import Any

from odm import Document, Embedded
from odm.contrib.admin import forms


class Knob(Embedded):
    """A row with a JSON field."""

    label: str
    extra: dict[str, Any] = {}


class Panel(Embedded):
    """An embedded model with a JSON field."""

    extra: dict[str, Any] = {}


class Board(Document):
    """A document with JSON fields at every depth the form has."""

    extra: dict[str, Any] = {}
    panel: Panel = Panel()
    knobs: list[Knob] = []

    class Meta:
        collection = "unit_boards"


def test_invalid_json_is_kept_as_typed_at_every_depth() -> None:
    specs = forms.describe(Board, ("id",))
    posted = {
        "extra": "{oops",
        "panel.extra": '{"fine": 1}',
        "knobs.0.label": "a",
        "knobs.0.extra": "[1,",
        "knobs.1.label": "b",
        "knobs.1.extra": "",
    }
    data, errors = forms.read_form(specs, posted)
    assert set(errors) == {"extra", "knobs.0.extra"}
    assert all(message.startswith("not valid JSON") for message in errors.values())
    assert forms.unparsed_paths(data) == {"extra", "knobs.0.extra"}
    assert data["panel"] == {"extra": {"fine": 1}}
    by_name = {spec.name: spec for spec in specs}
    assert forms.shown(by_name["extra"], data["extra"]) == "{oops"
    rows = forms.shown(by_name["knobs"], data["knobs"])
    assert [row["extra"] for row in rows] == ["[1,", ""]
