"""Projected rows (``only()`` / ``defer()``) become the documents ``model_construct`` would
build: the loaded fields set, the others at their defaults (factories called, mutable defaults
copied per document) or unset when required, in field order."""

from __future__ import annotations

import datetime as dt
from typing import Any

import bson
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ConfigDict, PrivateAttr

import odm
from odm.models.loading import _partial_plan, load_partial

MADE = dt.datetime(2020, 1, 2, tzinfo=dt.UTC)


class PartPiece(odm.Embedded):
    size: int = 1


class PartWide(odm.Document):
    name: str
    count: int = 3
    tags: list[str] = ["x"]  # a mutable default: each document gets its own copy
    made: dt.datetime = odm.Field(default_factory=lambda: MADE)
    piece: PartPiece = odm.Field(default_factory=PartPiece)
    nick: str | None = None
    renamed: str = odm.Field(default="r", alias="stored_as")
    needed: int
    # A factory given the fields set before it.
    echo: str = odm.Field(default_factory=lambda data: f"{data.get('name', '-')}!")


class PartLoose(odm.Document):
    model_config = ConfigDict(extra="allow")

    name: str
    count: int = 3


class PartPrivate(odm.Document):
    name: str
    count: int = 3
    _seen: int = PrivateAttr(default=7)


VALUES: dict[str, Any] = {
    "id": bson.ObjectId(),
    "name": "n",
    "count": 9,
    "tags": ["a", "b"],
    "made": dt.datetime(2024, 5, 6, tzinfo=dt.UTC),
    "piece": PartPiece(size=4),
    "nick": "nk",
    "renamed": "rn",
    "needed": 11,
    "echo": "e",
}


def _state(document: Any) -> tuple[Any, ...]:
    return (
        type(document),
        list(document.__dict__.items()),
        document.model_fields_set,
        document.__pydantic_extra__,
        document.__pydantic_private__,
    )


def _model_construct(model: type[Any], present: set[str]) -> Any:
    return model.model_construct(_fields_set=set(present), **{n: VALUES[n] for n in present})


@given(st.sets(st.sampled_from(sorted(PartWide.model_fields))))
def test_construct_is_model_construct(loaded: set[str]) -> None:
    names = frozenset(loaded | {"id"})
    plan = _partial_plan(PartWide, names)
    present = set(names)
    built = plan.construct(VALUES, present)
    assert _state(built) == _state(_model_construct(PartWide, present))
    # Fields loaded but absent from the stored document are not set either.
    fewer = present - {"name"}
    assert _state(plan.construct(VALUES, fewer)) == _state(_model_construct(PartWide, fewer))


def test_defaults_are_fresh_for_each_document() -> None:
    plan = _partial_plan(PartWide, frozenset({"id", "name"}))
    first = plan.construct(VALUES, {"id", "name"})
    second = plan.construct(VALUES, {"id", "name"})
    assert first.tags == second.tags == ["x"]
    assert first.tags is not second.tags
    assert first.piece is not second.piece
    assert "needed" not in first.__dict__  # required and not loaded: unset
    assert first.echo == "n!"  # its factory saw the loaded name


def test_extra_allowed_and_private_attributes_as_model_construct_has_them() -> None:
    loose = _partial_plan(PartLoose, frozenset({"id", "name"}))
    built = loose.construct(VALUES, {"id", "name"})
    expected = PartLoose.model_construct(_fields_set={"id", "name"}, id=VALUES["id"], name="n")
    assert _state(built) == _state(expected)
    assert built.__pydantic_extra__ == {}
    private = _partial_plan(PartPrivate, frozenset({"id", "name"}))
    built = private.construct(VALUES, {"id", "name"})
    assert built._seen == 7
    assert _state(built) == _state(
        PartPrivate.model_construct(_fields_set={"id", "name"}, id=VALUES["id"], name="n")
    )


def test_load_partial_builds_from_stored_rows() -> None:
    rows = [
        {"_id": bson.ObjectId(), "name": "ann", "stored_as": "s1"},
        {"_id": bson.ObjectId(), "name": "bob"},  # stored_as missing from this document
    ]
    ann, bob = load_partial(PartWide, rows, only=["name", "renamed"])
    assert ann.model_fields_set == {"id", "name", "renamed"}
    assert (ann.id, ann.name, ann.renamed, ann.count) == (rows[0]["_id"], "ann", "s1", 3)
    assert bob.model_fields_set == {"id", "name"}
    assert bob.renamed == "r"  # not stored: the default, as model_construct gives
    assert "needed" not in ann.__dict__
