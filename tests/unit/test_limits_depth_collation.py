"""Limits checked before anything is sent: collation options from a request body, the depth
of an update path, the names a partial load is given. No server."""

from __future__ import annotations

from typing import Any

import bson
import pytest
from pydantic import ValidationError

from odm import QueryError
from odm.collation import check_collation, collation_document
from odm.document import Document
from odm.models.loading import load_partial
from odm.nesting import MAX_DEPTH, check_payload, levels_below, path_too_deep, too_deep


class S17Note(Document):
    title: str = ""
    meta: dict[str, Any] = {}

    class Meta:
        collection = "s17_notes"


class S17Shape(Document):
    name: str = ""

    class Meta:
        collection = "s17_shapes"
        polymorphic = True


class S17Square(S17Shape):
    side: int = 1


class S17Circle(S17Shape):
    radius: int = 1


UNHASHABLE: dict[str, Any] = {
    "case_first": {"$x": 1}, "alternate": ["shifted"], "max_variable": {"a": 1},
}


@pytest.mark.parametrize("option", sorted(UNHASHABLE))
def test_an_unhashable_collation_option_is_a_query_error_naming_it(option: str) -> None:
    value = UNHASHABLE[option]
    server_name = {"case_first": "caseFirst", "alternate": "alternate",
                   "max_variable": "maxVariable"}[option]
    with pytest.raises(QueryError, match=f"{server_name} must be one of"):
        S17Note.objects.collation("en", **{option: value})
    with pytest.raises(ValueError, match=f"{server_name} must be one of"):
        collation_document("en", **{option: value})
    with pytest.raises(ValueError, match=f"{server_name} must be one of"):
        check_collation({"locale": "en", server_name: value}, "Index(collation=...)")


def test_a_known_collation_option_still_passes() -> None:
    assert collation_document("en", case_first="upper", alternate="shifted") == {
        "locale": "en", "caseFirst": "upper", "alternate": "shifted",
    }


def test_a_scalar_at_a_path_deeper_than_the_limit_is_too_deep() -> None:
    assert not too_deep(1, 0)
    assert too_deep(1, -1)  # was False: a scalar never counted as too deep
    assert levels_below("a.b") == MAX_DEPTH - 2
    assert not path_too_deep(".".join(["a"] * MAX_DEPTH))
    assert path_too_deep(".".join(["a"] * (MAX_DEPTH + 1)))
    assert path_too_deep("__".join(["a"] * (MAX_DEPTH + 1)), "__")


def test_check_payload_refuses_an_update_path_of_more_than_100_parts() -> None:
    fits = "meta." + ".".join(["a"] * (MAX_DEPTH - 2))  # 100 parts
    check_payload(S17Note, [{"$set": {fits: 1}}])
    for parts in (MAX_DEPTH + 1, 185, 300):
        path = "meta." + ".".join(["a"] * (parts - 1))
        with pytest.raises(ValidationError, match="deeper than MongoDB's 100 levels"):
            check_payload(S17Note, [{"$set": {path: 1}}])


def test_partial_load_of_a_polymorphic_base_gives_each_row_its_class() -> None:
    rows = [
        {"_id": bson.ObjectId(), "_cls": "S17Square", "name": "s", "side": 3},
        {"_id": bson.ObjectId(), "_cls": "S17Circle", "name": "c", "radius": 2},
        {"_id": bson.ObjectId(), "name": "plain"},
    ]
    square, circle, shape = load_partial(S17Shape, rows, only=["side", "name"])
    assert [type(d) for d in (square, circle, shape)] == [S17Square, S17Circle, S17Shape]
    assert (square.side, square.name, circle.name, shape.name) == (3, "s", "c", "plain")
    assert circle.model_fields_set == {"id", "name"}
    square, circle, _ = load_partial(S17Shape, rows, deferred=["side"])
    assert "side" not in square.model_fields_set and circle.radius == 2


def test_partial_load_names_a_field_no_class_of_the_family_declares() -> None:
    with pytest.raises(QueryError, match="'nothing'") as caught:
        load_partial(S17Shape, [], only=["nothing"])
    assert caught.value.field == "nothing"
    with pytest.raises(QueryError, match="'radius'"):
        load_partial(S17Square, [], deferred=["radius"])  # a sibling's field
