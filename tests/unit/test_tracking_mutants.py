"""Change-tracking rules that mutation testing (``nox -s mutation``) found unguarded.

See docs/mutation-testing.md: each test pins what a surviving mutant of odm/models/tracking.py
or odm/models/diffing.py changed.
"""

from __future__ import annotations

from typing import Any

from odm.document import Document, Embedded
from odm.models import tracking, writes
from odm.models.diffing import diff, same_values
from odm.models.loading import load_documents
from odm.models.writes import write_filter


class Loose(Document):
    name: str
    value: Any = None

    class Meta:
        collection = "tracking_mutants"


def test_has_changes_compares_the_stored_form_with_the_snapshot() -> None:
    new = Loose(name="a")
    assert tracking.has_changes(new, new.to_bson())  # never stored: everything is a change
    (loaded,) = load_documents(Loose, [new.to_bson()])
    assert not tracking.has_changes(loaded, loaded.to_bson())
    loaded.name = "b"
    assert tracking.has_changes(loaded, loaded.to_bson())
    assert not tracking.has_changes(loaded, {**loaded.to_bson(), "name": "a"})


def test_a_value_turning_into_a_list_or_back_is_set_whole() -> None:
    assert diff({"v": None}, {"v": ["x"]}) == {"$set": {"v": ["x"]}}
    assert diff({"v": "ab"}, {"v": ["a", "b"]}) == {"$set": {"v": ["a", "b"]}}
    assert diff({"v": "a"}, {"v": ["a", "b"]}) == {"$set": {"v": ["a", "b"]}}
    assert diff({"v": ["x"]}, {"v": None}) == {"$set": {"v": None}}
    assert diff({"v": ["a"]}, {"v": "ab"}) == {"$set": {"v": "ab"}}
    assert diff({"v": {"a": 1}}, {"v": [1]}) == {"$set": {"v": [1]}}
    assert diff({"v": [1]}, {"v": {"a": 1}}) == {"$set": {"v": {"a": 1}}}


def test_a_value_turning_into_a_list_or_back_is_saved_whole() -> None:
    for before, after in ((None, ["x"]), ("a", ["a", "b"]), (["a"], "ab"), (["x"], None)):
        (loaded,) = load_documents(Loose, [Loose(name="n", value=before).to_bson()])
        loaded.value = after
        plan = writes.pending_update(loaded)
        assert plan is not None
        assert plan._doc == {"$set": {"value": after}}
        writes.mark_clean(loaded)
        assert tracking.get_snapshot(loaded) == {"_id": loaded.id, "name": "n", "value": after}
        assert writes.pending_update(loaded) is None


def test_a_stored_int_turning_into_a_bool_is_a_change() -> None:
    for before, after in ((1, True), (0, False), (True, 1), (1, 1.0)):
        (loaded,) = load_documents(Loose, [Loose(name="n", value=before).to_bson()])
        loaded.value = after
        assert writes.is_dirty(loaded)
        update = writes.pending_update(loaded)._doc
        assert update == {"$set": {"value": after}}
        assert type(update["$set"]["value"]) is type(after)


class ShardAddress(Embedded):
    city: str = ""


class ShardedByCity(Document):
    addr: ShardAddress | None = None

    class Meta:
        collection = "tracking_mutants_sharded"
        shard_key = ("addr.city",)


def test_the_write_filter_takes_a_dotted_shard_key_from_what_is_stored() -> None:
    new = ShardedByCity(addr=ShardAddress(city="Paris"))
    assert write_filter(new) == {"_id": new.id, "addr.city": "Paris"}
    (loaded,) = load_documents(ShardedByCity, [new.to_bson()])
    assert loaded.addr is not None
    loaded.addr.city = "Lyon"  # the document is still on the shard of Paris
    assert write_filter(loaded) == {"_id": new.id, "addr.city": "Paris"}
    (homeless,) = load_documents(ShardedByCity, [ShardedByCity().to_bson()])
    assert write_filter(homeless) == {"_id": homeless.id, "addr.city": None}


def test_a_new_top_level_key_is_set_to_its_value() -> None:
    assert diff({"_id": 1}, {"_id": 1, "a": 1}) == {"$set": {"a": 1}}


def test_equal_values_that_are_not_the_same_objects_are_the_same_values() -> None:
    first, second = [1.5, "x" * 3], [1.5, "".join(["x", "x", "x"])]
    assert first[1] is not second[1]
    assert same_values(first, second)
    assert not same_values([1.5], [1])  # equal in Python, another BSON type


def test_a_removed_plain_key_beside_a_dotted_one_is_unset_by_path() -> None:
    """Only the keys a change names must be path segments: an unchanged dotted key beside a
    removed plain one still lets the removal be an ``$unset`` of that one key."""
    old = {"_id": 1, "meta": {"a.b": 1, "x": 2}}
    new = {"_id": 1, "meta": {"a.b": 1}}
    assert diff(old, new) == {"$unset": {"meta.x": ""}}
