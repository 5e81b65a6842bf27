"""A document with JSON inputs at every depth the admin's form has (a field, an embedded
model's field, a row's field), shared by the tests of the admin's JSON inputs."""

from __future__ import annotations

from typing import Any

from odm import Document, Embedded


class JsonPanel(Embedded):
    """An embedded model with a JSON input."""

    extra: dict[str, Any] = {}


class JsonKnob(Embedded):
    """A row with a JSON input."""

    label: str
    extra: dict[str, Any] = {}


class JsonBoard(Document):
    """A document with JSON inputs at every depth the form has."""

    name: str
    extra: dict[str, Any] = {}
    panel: JsonPanel = JsonPanel()
    knobs: list[JsonKnob] = []

    class Meta:
        collection = "admin_json_boards"
