"""Which ``matched()`` filters tell MongoDB the element to write, and which ``each()`` updates
ask first for a document without the list (no server needed: the server's side of both is
in ``tests/integration/querysets/test_qs_half_written_lists.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from odm import Document, Embedded, F
from odm.query.update_checks import binds_element
from odm.query.updates import compile_update_spec


class EcRooms(Embedded):
    rooms: list[str]


class EcDoc(Document):
    plain: list[str]
    defaulted: list[str] = []
    nullable: list[str] | None = None
    home: EcRooms
    spare: EcRooms = EcRooms(rooms=[])
    maybe: EcRooms | None = None
    meta: dict[str, list[str]] = {}

    class Meta:
        collection = "ec_docs"


@pytest.mark.parametrize(
    ("key", "asked"),
    [
        ("plain", False),  # required, no default: in every document the model loads
        ("home__rooms", False),  # required, in a required document
        ("defaulted", True),  # a document stored before the field was declared lacks it
        ("nullable", True),
        ("spare__rooms", True),  # the document holding it has a default
        ("maybe__rooms", True),
        ("meta__k", True),  # a key of a dict may be missing
    ],
)
def test_each_asks_first_only_where_a_loadable_document_may_lack_the_list(
    key: str, asked: bool
) -> None:
    compiled = compile_update_spec(EcDoc, {key: F(key).each("x")})
    lists = [(n.key, n.path, n.required) for n in compiled.needs if n.alias == "array"]
    assert lists == ([(key, key.replace("__", "."), True)] if asked else [])


def test_matched_adds_no_check_of_the_list_itself() -> None:
    """``$`` writes an element the filter matched: the list is there."""
    compiled = compile_update_spec(EcDoc, {"defaulted": F("defaulted").matched("x")})
    assert compiled.needs == []


@pytest.mark.parametrize(
    ("filter", "binds"),
    [
        ({"tags": "a"}, True),
        ({"tags": {"$in": ["a", "b"]}}, True),
        ({"k": 1, "$and": [{"tags": {"$ne": "z"}}, {"tags": {"$lt": "m"}}]}, True),
        ({"tags": {"$regex": "^a", "$options": "i"}}, True),
        ({"tags": {"$type": ["string", "int"]}}, True),
        ({"tags.sku": {"$exists": 1}}, True),
        ({"tags": {"$eq": {"sku": "a"}}}, True),
        # Met by a document no element meets, or by the list as a whole.
        ({"tags": {"$ne": "a"}}, False),
        ({"tags": {"$nin": ["a"]}}, False),
        ({"tags": {"$not": {"$eq": "a"}}}, False),
        ({"$nor": [{"$nor": [{"tags": "a"}]}]}, False),  # ~~Q(tags="a")
        ({"$or": [{"tags": "a"}, {"tags": "b"}]}, False),  # MongoDB's $or notes nothing
        ({"$or": [{"tags": "a"}]}, False),
        ({"tags": {"$in": ["a", None]}}, False),
        ({"tags": {"$in": []}}, False),
        ({"tags": {"$all": []}}, False),
        ({"tags": {"$type": [2, 4]}}, False),
        ({"tags": {"$type": "null"}}, False),
        ({"tags": {"$exists": True}}, False),
        ({"tags.sku": {"$exists": False}}, False),
        ({"tags.sku": None}, False),
        ({"tags.1": "a"}, False),
        ({"tagsx": "a", "other.tags": "a"}, False),
        ({"$and": "not a list"}, False),
    ],
)
def test_only_a_test_of_an_element_every_match_passes_tells_mongodb_the_element(
    filter: dict[str, Any], binds: bool
) -> None:
    assert binds_element(filter, "tags") is binds
