"""The change-tracking rules: what save() would send for each kind of change."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import bson

from odm.document import Document
from odm.models import tracking, writes
from odm.models.diffing import diff, same
from odm.models.loading import load_documents
from odm.models.writes import prepare_update


def test_no_change_no_update() -> None:
    raw = {"_id": 1, "a": 1, "l": [1, 2], "d": {"x": {"y": 1}}}
    assert diff(raw, dict(raw)) == {}


def test_only_changed_fields_are_set() -> None:
    assert diff({"a": 1, "b": 2}, {"a": 1, "b": 3}) == {"$set": {"b": 3}}
    assert diff({"a": 1}, {"a": 1, "new": None}) == {"$set": {"new": None}}


def test_unknown_stored_keys_are_left_alone() -> None:
    assert diff({"a": 1, "someone_elses": 5}, {"a": 2}) == {"$set": {"a": 2}}


def test_embedded_changes_use_dotted_paths() -> None:
    old = {"addr": {"city": "Paris", "zip": "1", "geo": {"lat": 1}}}
    new = {"addr": {"city": "Lyon", "geo": {"lat": 2}}}
    assert diff(old, new) == {
        "$set": {"addr.city": "Lyon", "addr.geo.lat": 2},
        "$unset": {"addr.zip": ""},
    }
    assert diff({"addr": None}, {"addr": {"city": "x"}}) == {"$set": {"addr": {"city": "x"}}}
    assert diff({"d": {}}, {"d": {"k": 1}}) == {"$set": {"d.k": 1}}
    assert diff({"d": {"k": 1}}, {"d": {}}) == {"$set": {"d": {}}}
    assert diff({"addr": {"city": "x"}}, {"addr": None}) == {"$set": {"addr": None}}


def test_lists_whole_unless_pure_append() -> None:
    assert diff({"t": ["a"]}, {"t": ["a", "b", "c"]}) == {"$push": {"t": {"$each": ["b", "c"]}}}
    assert diff({"t": ["a", "b"]}, {"t": ["b"]}) == {"$set": {"t": ["b"]}}
    assert diff({"t": ["a"]}, {"t": ["x", "a"]}) == {"$set": {"t": ["x", "a"]}}
    assert diff({"t": []}, {"t": ["a"]}) == {"$push": {"t": {"$each": ["a"]}}}
    assert diff({"t": ["a"]}, {"t": []}) == {"$set": {"t": []}}
    assert diff({"e": {"t": [1]}}, {"e": {"t": [1, 2]}}) == {"$push": {"e.t": {"$each": [2]}}}


def test_values_equal_once_stored_are_not_changes() -> None:
    class Color(enum.Enum):
        RED = "red"

    aware = dt.datetime(2024, 1, 2, 3, 4, 5, 678_000, tzinfo=dt.UTC)
    assert same(aware, aware.replace(microsecond=678_999))
    assert same(aware.replace(tzinfo=None), aware)
    paris = dt.timezone(dt.timedelta(hours=1))
    assert same(aware.astimezone(paris), aware)
    assert same("red", Color.RED)
    assert same([1, 2], (1, 2))
    assert not same(True, 1)
    assert not same(aware, aware.replace(microsecond=679_000))


def test_values_equal_in_python_but_not_in_bson_are_changes() -> None:
    """Issue #19 item 4: BSON keeps int32, int64, double and bool apart, and the sign of
    zero; ``==`` does not."""
    assert not same(1, 1.0) and not same(1.0, 1)
    assert not same(0.0, -0.0) and not same(-0.0, 0.0) and same(-0.0, -0.0)
    assert not same(True, 1.0) and not same(1, True)
    assert not same(bson.Int64(5), 5) and same(bson.Int64(2**40), 2**40)
    assert same(float("nan"), float("nan"))
    # Inside containers too, however deep, and whatever the container types.
    assert not same({"a": [1, {"b": 0.0}]}, {"a": [1, {"b": -0.0}]})
    assert not same([1, 2], (1, 2.0)) and not same({"k": 1}, {"k": 1.0})
    assert same({"a": [1, {"b": 0.5}]}, {"a": (1, {"b": 0.5})})
    assert diff({"x": 1, "y": 0.0}, {"x": 1.0, "y": -0.0}) == {"$set": {"x": 1.0, "y": -0.0}}
    assert diff({"m": {"k": 1}}, {"m": {"k": 1.0}}) == {"$set": {"m.k": 1.0}}


class Tracked(Document):
    name: str
    tags: list[str] = []
    meta: dict[str, Any] = {}

    class Meta:
        collection = "tracking_docs"


def test_prepare_update_and_the_uow_interface() -> None:
    doc = Tracked(name="a")
    assert prepare_update(doc) is None and writes.pending_update(doc) is None
    (loaded,) = load_documents(Tracked, [doc.to_bson()])
    assert prepare_update(loaded) is None
    loaded.tags.append("x")
    loaded.meta["k"] = 1
    plan = prepare_update(loaded)
    assert plan is not None
    filter, update, _ = plan
    assert filter == {"_id": doc.id}
    assert update == {"$set": {"meta.k": 1}, "$push": {"tags": {"$each": ["x"]}}}
    operation = writes.pending_update(loaded)
    assert operation is not None
    writes.mark_clean(loaded)
    assert writes.pending_update(loaded) is None
    assert tracking.collection_model(Tracked) is Tracked


def test_in_place_change_of_an_any_value_is_seen() -> None:
    raw = {"_id": bson.ObjectId(), "name": "a", "tags": [], "meta": {"nested": {"n": 1}}}
    (loaded,) = load_documents(Tracked, [raw])
    loaded.meta["nested"]["n"] = 2
    plan = prepare_update(loaded)
    assert plan is not None and plan[1] == {"$set": {"meta.nested.n": 2}}
