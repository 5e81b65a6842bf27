"""Change-tracking rules that mutation testing (``nox -s mutation``) found unguarded.

See docs/mutation-testing.md: each test pins what a surviving mutant of odm/models/tracking.py
or odm/models/diffing.py changed.
"""

from __future__ import annotations

import copy
import datetime as _dt
import decimal
import enum
import math
import os
import pickle
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import bson
import pytest
from bson.son import SON
from hypothesis import given, settings
from hypothesis import strategies as st

from odm.document import Document, Embedded
from odm.executor import CODEC_OPTIONS
from odm.models import tracking, writes
from odm.models.diffing import diff, same, same_values
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


# -- same(): stored as the same BSON value ----------------------------------------------------
#
# The oracle is PyMongo's encoder with the ODM's codec options: two values are "the same" when
# they encode to the same bytes. Each leaf of a generated shape is a class of values that
# Python's == takes for one another (an int, a double, a bool, an Int64, a plain enum member of
# that value, an aware datetime and its naive UTC form...); two realisations of the shape pick
# members (and container types) independently, so the pairs are often equal in Python and
# differ only in what BSON keeps apart.


class _Rate(enum.Enum):
    HALF = 0.5


class _Count(enum.Enum):
    ONE = 1


class _Items(list[Any]):
    """A list subclass (BSON stores it as an array, as it does a list or a tuple)."""


_IST = _dt.timezone(_dt.timedelta(hours=5, minutes=30))
_EQUAL_IN_PYTHON: list[list[Any]] = [
    [0, 0.0, -0.0, False, bson.Int64(0)],
    [1, 1.0, True, bson.Int64(1), _Count.ONE],
    [0.5, _Rate.HALF],
    [2**31 - 1, float(2**31 - 1), bson.Int64(2**31 - 1)],
    [-(2**31), float(-(2**31)), bson.Int64(-(2**31))],
    [2**31, float(2**31), bson.Int64(2**31)],
    [-(2**31) - 1, bson.Int64(-(2**31) - 1)],
    [math.nan],
    [
        _dt.datetime(2026, 12, 5, 10, 0, 0, 123456),
        _dt.datetime(2026, 12, 5, 10, 0, 0, 123000),
        _dt.datetime(2026, 12, 5, 10, 0, 0, 124000),
        _dt.datetime(2026, 12, 5, 15, 30, 0, 123000, tzinfo=_IST),
        _dt.datetime(2026, 12, 5, 10, 0, 0, 123000, tzinfo=_dt.UTC),
    ],
    ["a"],
    [None],
]
_SEQUENCES: list[Callable[[list[Any]], Any]] = [list, tuple, _Items]
_MAPPINGS: list[Callable[[list[tuple[str, Any]]], Any]] = [dict, OrderedDict, SON]

_shapes = st.recursive(
    st.integers(0, len(_EQUAL_IN_PYTHON) - 1),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from("xyz"), children, max_size=3),
    max_leaves=6,
)


def _realise(data: st.DataObject, shape: Any) -> Any:
    """One value of ``shape``: a member of each leaf's class (now and then of any class),
    each container of a type drawn among those BSON stores alike."""
    if isinstance(shape, list):
        make = data.draw(st.sampled_from(_SEQUENCES))
        return make([_realise(data, child) for child in shape])
    if isinstance(shape, dict):
        make = data.draw(st.sampled_from(_MAPPINGS))
        return make([(key, _realise(data, child)) for key, child in shape.items()])
    members = _EQUAL_IN_PYTHON[shape]
    if data.draw(st.integers(0, 5)) == 0:
        members = data.draw(st.sampled_from(_EQUAL_IN_PYTHON))
    return data.draw(st.sampled_from(members))


def _encoded(value: Any) -> bytes:
    return bson.encode({"v": value}, codec_options=CODEC_OPTIONS)


@contextmanager
def _local_time_zone(tz: str) -> Iterator[None]:
    """Run with ``tz`` (a POSIX TZ string: no zone database needed) as the local time zone."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = tz
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


@settings(max_examples=400, deadline=None)
@given(shape=_shapes, data=st.data())
def _check_same_agrees_with_bson(shape: Any, data: st.DataObject) -> None:
    a, b = _realise(data, shape), _realise(data, shape)
    assert same(a, b) == (_encoded(a) == _encoded(b)), (a, b)


def test_same_tells_apart_exactly_what_bson_stores_apart() -> None:
    """``same(a, b)`` is true exactly when BSON stores ``a`` and ``b`` alike: type (int32 up
    to its bounds, int64, double, bool), the sign of a zero, NaN, milliseconds of a datetime
    in UTC (whatever the machine's local zone: here UTC+05:30), an enum as its value, and the
    same inside lists, tuples, list subclasses, dicts and other mappings."""
    with _local_time_zone("IST-05:30"):
        _check_same_agrees_with_bson()


def test_the_bounds_of_int32_are_int32() -> None:
    for bound in (-(2**31), 2**31 - 1):
        assert not same(bound, bson.Int64(bound))
        assert same(bound, bson.Int64(bound)) == (_encoded(bound) == _encoded(bson.Int64(bound)))
        assert diff({"v": bson.Int64(bound)}, {"v": bound}) == {"$set": {"v": bound}}


def test_a_double_and_nan_are_not_the_same() -> None:
    assert diff({"v": 1.0}, {"v": math.nan})["$set"]["v"] is math.nan
    assert diff({"v": math.nan}, {"v": 1.0}) == {"$set": {"v": 1.0}}
    assert diff({"v": math.nan}, {"v": math.nan}) == {}


class Rated(Document):
    rate: _Rate = _Rate.HALF
    count: _Count = _Count.ONE
    value: Any = None

    class Meta:
        collection = "tracking_mutants_rated"


def test_an_unchanged_enum_field_is_not_a_change() -> None:
    """The server gives back an enum field as its value (``0.5``, ``1``); the document holds
    the member: that is no change, and the next save sends nothing."""
    raw = {"_id": bson.ObjectId(), "rate": 0.5, "count": 1, "value": None}
    (loaded,) = load_documents(Rated, [raw])
    assert loaded.rate is _Rate.HALF and loaded.count is _Count.ONE
    assert not writes.is_dirty(loaded)
    assert writes.pending_update(loaded) is None


def test_a_decimal_over_an_equal_double_is_a_change() -> None:
    """``Decimal("1") == 1.0`` in Python, but the stored double is not what was assigned:
    the save must try to write it (and then report that an untyped ``Decimal`` cannot be
    stored), not keep the double silently."""
    raw = {"_id": bson.ObjectId(), "rate": 0.5, "count": 1, "value": 1.0}
    (loaded,) = load_documents(Rated, [raw])
    loaded.value = decimal.Decimal("1")
    assert writes.is_dirty(loaded)
    update = writes.pending_update(loaded)
    assert update is not None and update._doc == {"$set": {"value": decimal.Decimal("1")}}


# -- the instance slots tracking.py owns: copies, pickles, aborts and annotations ----------


class SlotDoc(Document):
    name: str = ""
    tags: list[str] = []

    class Meta:
        collection = "tm_slots"


def _stored(name: str = "a", *, partial: bool = False) -> SlotDoc:
    """A document as if loaded: its snapshot is its stored form."""
    document = SlotDoc(name=name, tags=["x"])
    tracking.set_snapshot(document, document.to_bson())
    tracking.set_partial(document, partial)
    return document


def test_a_never_stored_document_has_no_tracking_state_to_read() -> None:
    fresh = SlotDoc()  # no slot was ever set
    assert tracking.take_pending(fresh) is None
    assert tracking.raw_snapshot(fresh) is None
    assert tracking.annotations_of(fresh) == {}
    copied = copy.copy(fresh)
    assert tracking.get_snapshot(copied) is None and not tracking.is_partial(copied)
    assert tracking.get_snapshot(pickle.loads(pickle.dumps(fresh))) is None


def test_copies_and_pickles_keep_the_partial_flag_and_the_snapshot() -> None:
    partial = _stored(partial=True)
    for copied in (copy.copy(partial), copy.deepcopy(partial), pickle.loads(pickle.dumps(partial))):
        assert tracking.is_partial(copied)
        assert tracking.get_snapshot(copied) == tracking.get_snapshot(partial)
    whole = _stored()
    deep = copy.deepcopy(whole)
    # A deep copy owns its snapshot: changing it leaves the original's alone.
    assert tracking.get_snapshot(deep) is not tracking.get_snapshot(whole)
    assert tracking.get_snapshot(deep) == tracking.get_snapshot(whole)
    assert not tracking.is_partial(pickle.loads(pickle.dumps(whole)))


def test_documents_pickled_together_stay_copies_of_each_other() -> None:
    original = _stored("a")
    twin = copy.copy(original)
    original2, twin2 = pickle.loads(pickle.dumps((original, twin)))
    assert tracking.family_of(original2) is tracking.family_of(twin2) is not None


def test_raw_snapshot_survives_a_changed_id() -> None:
    document = _stored()
    snapshot = tracking.get_snapshot(document)
    document.id = bson.ObjectId()
    assert tracking.get_snapshot(document) is None  # a new document now
    assert tracking.raw_snapshot(document) is snapshot


def test_set_snapshots_gives_each_document_its_own() -> None:
    documents = [SlotDoc(name=str(i)) for i in range(3)]
    raws = [d.to_bson() for d in documents]
    tracking.set_snapshots(documents, raws)
    assert [tracking.get_snapshot(d) for d in documents] == raws


def test_capture_and_restore_put_the_partial_flag_back() -> None:
    document = _stored(partial=True)
    state = tracking.capture_state(document)
    tracking.set_partial(document, False)
    tracking.set_snapshot(document, None)
    tracking.restore_state(document, state)
    assert tracking.is_partial(document)
    assert tracking.get_snapshot(document) is not None


def test_annotations_are_a_read_only_copy() -> None:
    document = _stored()
    values = {"score": 1.5}
    tracking.set_annotations(document, values)
    values["score"] = 9.0
    assert tracking.annotations_of(document) == {"score": 1.5}
    with pytest.raises(TypeError):
        tracking.annotations_of(document)["score"] = 2.0  # type: ignore[index]
