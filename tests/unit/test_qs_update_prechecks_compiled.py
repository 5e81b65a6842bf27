"""What ``compile_update_spec`` asks an update's matching documents to hold, and which element
a ``matched()`` update's checks look at (no server needed)."""

from __future__ import annotations

from typing import Any

import pytest

from odm import Document, Embedded, F
from odm.query.updates import compile_update_spec, matched_condition


class UpAddress(Embedded):
    n: int = 0
    city: str = ""


class UpDoc(Document):
    address: UpAddress | None = None
    home: UpAddress = UpAddress()

    class Meta:
        collection = "up_docs"


def test_two_keys_inside_one_nullable_parent_check_it_once() -> None:
    needs = compile_update_spec(UpDoc, {"address__n": F("address__n") + 1, "address__city": "x"})
    assert [(n.label, n.path, n.alias) for n in needs.needs] == [("address", "address", "object")]
    assert needs.needs[0].unfit() == {"$or": [
        {"address": {"$exists": True, "$not": {"$type": "object"}}},
        {"address": {"$type": "array"}},
    ]}
    assert compile_update_spec(UpDoc, {"home__n": 1, "home__city": "x"}).needs == []


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({"items.sku": "pen"}, {"sku": "pen"}),
        ({"a": 1, "$and": [{"items.sku": "pen"}, {"items.qty": 2}]},
         {"$or": [{"sku": "pen"}, {"qty": 2}]}),
        ({"items": {"$elemMatch": {"sku": "pen", "qty": {"$gt": 1}}}},
         {"sku": "pen", "qty": {"$gt": 1}}),
        # What cannot be told to name the element: every element is checked.
        ({"items.sku": "pen", "$or": [{"items.qty": 1}, {"b": 2}]}, None),
        ({"items.0.sku": "pen"}, None),
        ({"items": {"$elemMatch": {"$gt": 1}}}, None),
        ({"items": {"$size": 2}}, None),
        ({"other.sku": "pen"}, None),
    ],
)
def test_the_element_matched_writes_is_one_the_filter_matched(
    filter: dict[str, Any], expected: dict[str, Any] | None
) -> None:
    assert matched_condition(filter, "items") == expected
