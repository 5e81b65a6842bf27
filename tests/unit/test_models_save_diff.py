"""save()'s change detection (save_plan.changes) against the whole-dump diff it replaces.

``changes()`` compares the instance with its snapshot field by field, following a plan read
from the class's pydantic core schema, instead of dumping the whole document and diffing the
dump. Each case here checks that it sends what ``diff(snapshot, doc.to_bson())`` sends, that
the snapshot it returns is what the database holds afterwards, and that the old snapshot is
never mutated (copies of a document share it).
"""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import enum
from collections.abc import Callable
from typing import Annotated, Any, Literal

import bson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import (
    BaseModel,
    ConfigDict,
    PlainSerializer,
    ValidationError,
    computed_field,
    model_serializer,
)

import odm
from odm.document import Document, Embedded
from odm.executor import CODEC_OPTIONS
from odm.models import model_plan, save_plan, writes
from odm.models.diffing import diff, same
from odm.models.fields import Field
from odm.models.loading import load_documents
from odm.models.save_plan import changes
from odm.models.tracking import get_snapshot
from odm.models.writes import commit_update, prepare_update


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Line(Embedded):
    sku: str
    qty: int = 1
    note: str | None = None


class SpecialLine(Line):
    special: bool = True


class Geo(Embedded):
    lat: float = 0.0
    lng: float = 0.0


class Address(Embedded):
    city: str = "Paris"
    zip_code: str = Field(default="75000", alias="zip")
    geo: Geo = Field(default_factory=Geo)


class Loose(Embedded):
    model_config = ConfigDict(extra="allow")
    a: int = 0


class Node(Embedded):
    name: str
    children: list[Node] = []


class Shouted(Embedded):
    word: Annotated[str, PlainSerializer(lambda v: v.upper())] = "hi"


def _when() -> dt.datetime:
    return dt.datetime(2024, 1, 2, 3, 4, 5, 678_000, tzinfo=dt.UTC)


class Everything(Document):
    name: str = "n"
    count: int = 0
    ratio: float = 1.5
    flag: bool = False
    when: dt.datetime = Field(default_factory=_when)
    day: dt.date | None = None
    color: Color = Color.RED
    kind: Literal["a", "b"] = "a"
    price: odm.Decimal = Field(default_factory=lambda: decimal.Decimal("1.50"))
    other_id: odm.ObjectId = Field(default_factory=bson.ObjectId)
    label: str = Field(default="x", alias="lbl")
    maybe: int | None = None
    tags: list[str] = []
    meta: dict[str, Any] = {}
    anything: Any = None
    lines: list[Line] = []
    address: Address = Field(default_factory=Address)
    other_address: Address | None = None
    loose: Loose = Field(default_factory=Loose)
    tree: Node = Field(default_factory=lambda: Node(name="root"))
    shouted: Shouted = Field(default_factory=Shouted)
    loud: Annotated[str, PlainSerializer(lambda v: v.upper())] = "ABC"

    class Meta:
        collection = "save_diff_everything"


def stored(doc: Document) -> dict[str, Any]:
    """``doc`` as a round trip through BSON gives it back (what a find returns)."""
    data = bson.encode(doc.to_bson(), codec_options=CODEC_OPTIONS)
    return bson.decode(data, codec_options=CODEC_OPTIONS)


def loaded(doc: Document) -> Any:
    return load_documents(type(doc), [stored(doc)])[0]


def apply_update(raw: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A tiny MongoDB: ``update`` ($set / $unset / $push $each, dotted paths) on a copy."""
    raw = copy.deepcopy(raw)

    def holder(path: str) -> tuple[dict[str, Any], str]:
        *parents, last = path.split(".")
        node = raw
        for part in parents:
            node = node[part]
        return node, last

    for path, value in update.get("$set", {}).items():
        node, last = holder(path)
        node[last] = copy.deepcopy(value)
    for path in update.get("$unset", {}):
        node, last = holder(path)
        node.pop(last, None)
    for path, push in update.get("$push", {}).items():
        node, last = holder(path)
        node[last] = [*node[last], *copy.deepcopy(push["$each"])]
    return raw


class Database:
    """One stored document and the instance that was loaded from it."""

    def __init__(self, doc: Document) -> None:
        self.raw = stored(doc)
        self.doc = load_documents(type(doc), [self.raw])[0]
        self.raw = copy.deepcopy(self.raw)  # what the server holds, apart from the snapshot

    def save(self) -> dict[str, Any]:
        """What save() would send (checked against the whole-dump diff), applied; nothing
        when the document's model would not load what it would store (then save() refuses
        it, and so must the flush)."""
        doc = self.doc
        snapshot = get_snapshot(doc)
        assert snapshot is not None
        before = copy.deepcopy(snapshot)
        loads = _loads(doc)
        try:
            update, new_snapshot = changes(doc, snapshot)
        except ValidationError:
            assert not loads, "a change its model loads was refused"
            assert snapshot == before, "the old snapshot was mutated"
            with pytest.raises(ValidationError):
                prepare_update(doc)
            return {}
        assert loads, "a change its model would not load was let through"
        assert update == diff(snapshot, doc.to_bson())
        assert snapshot == before, "the old snapshot was mutated"
        plan = prepare_update(doc)
        if not update:
            assert plan is None
            return update
        assert plan is not None and plan[1] == update
        assert diff(new_snapshot, doc.to_bson()) == {}
        commit_update(doc, plan[2])
        self.raw = apply_update(self.raw, update)
        # The server now holds what the document dumps to, and so does the new snapshot.
        assert diff(self.raw, doc.to_bson()) == {}
        assert same(self.raw, get_snapshot(doc))
        return update


def _loads(doc: Document) -> bool:
    """Whether the model of ``doc`` loads what it stores now (what a read validates)."""
    try:
        type(doc).model_validate(doc.to_bson())
    except ValidationError:
        return False
    return True


def everything() -> Everything:
    return Everything(
        lines=[Line(sku="a"), Line(sku="b")],
        tags=["x"],
        meta={"k": {"x": 1}, "gone": 1},
        anything={"z": [1]},
        loose=Loose(a=1, b={"deep": 1}),
        tree=Node(name="r", children=[Node(name="c")]),
        day=dt.date(2024, 5, 6),
    )


def test_the_class_has_a_plan() -> None:
    plan = model_plan.document_plan(Everything)
    assert plan is not None
    kinds = {name: kind for name, _, kind, _, _ in plan.fields}
    assert kinds["name"] == kinds["other_id"] == kinds["color"] == model_plan.PLAIN
    assert kinds["address"] == kinds["tree"] == kinds["shouted"] == model_plan.MODEL
    assert kinds["lines"] == model_plan.MODEL_LIST
    assert kinds["tags"] == model_plan.PLAIN_LIST
    for other in ("price", "meta", "loose", "loud"):
        assert kinds[other] == model_plan.OTHER, other
    assert {key for _, key, _, _, _ in plan.fields} >= {"_id", "lbl"}


Mutation = Callable[[Any], None]

MUTATIONS: list[tuple[str, Mutation, dict[str, Any]]] = [
    ("nothing", lambda d: None, {}),
    ("a plain field", lambda d: setattr(d, "count", 7), {"$set": {"count": 7}}),
    (
        "an embedded field",
        lambda d: setattr(d.address, "city", "Lyon"),
        {"$set": {"address.city": "Lyon"}},
    ),
    (
        "an aliased embedded field",
        lambda d: setattr(d.address, "zip_code", "69000"),
        {"$set": {"address.zip": "69000"}},
    ),
    (
        "a field two levels down",
        lambda d: setattr(d.address.geo, "lat", 3.5),
        {"$set": {"address.geo.lat": 3.5}},
    ),
    ("an aliased field", lambda d: setattr(d, "label", "y"), {"$set": {"lbl": "y"}}),
    (
        "an item of a list of models, in place",
        lambda d: setattr(d.lines[0], "qty", 5),
        {
            "$set": {
                "lines": [
                    {"sku": "a", "qty": 5, "note": None},
                    {"sku": "b", "qty": 1, "note": None},
                ]
            }
        },
    ),
    (
        "a model appended to a list",
        lambda d: d.lines.append(Line(sku="c")),
        {"$push": {"lines": {"$each": [{"sku": "c", "qty": 1, "note": None}]}}},
    ),
    ("a list item replaced", lambda d: d.tags.__setitem__(0, "y"), {"$set": {"tags": ["y"]}}),
    ("a list appended to", lambda d: d.tags.append("z"), {"$push": {"tags": {"$each": ["z"]}}}),
    (
        "a dict value, in place",
        lambda d: d.meta["k"].__setitem__("x", 2),
        {"$set": {"meta.k.x": 2}},
    ),
    ("a dict key removed", lambda d: d.meta.pop("gone"), {"$unset": {"meta.gone": ""}}),
    (
        "an Any value, in place",
        lambda d: d.anything["z"].append(2),
        {"$push": {"anything.z": {"$each": [2]}}},
    ),
    ("Optional set", lambda d: setattr(d, "maybe", 3), {"$set": {"maybe": 3}}),
    ("Optional None", lambda d: setattr(d, "day", None), {"$set": {"day": None}}),
    (
        "Optional embedded set",
        lambda d: setattr(d, "other_address", Address(city="X")),
        {
            "$set": {
                "other_address": {
                    "city": "X",
                    "zip": "75000",
                    "geo": {"lat": 0.0, "lng": 0.0},
                }
            }
        },
    ),
    (
        "a datetime",
        lambda d: setattr(d, "when", dt.datetime(2025, 1, 1, tzinfo=dt.UTC)),
        {"$set": {"when": dt.datetime(2025, 1, 1, tzinfo=dt.UTC)}},
    ),
    (
        "a datetime below the millisecond BSON keeps",
        lambda d: setattr(d, "when", d.when.replace(microsecond=678_999)),
        {},
    ),
    ("an enum", lambda d: setattr(d, "color", Color.BLUE), {"$set": {"color": Color.BLUE}}),
    ("a literal", lambda d: setattr(d, "kind", "b"), {"$set": {"kind": "b"}}),
    (
        "a Decimal",
        lambda d: setattr(d, "price", decimal.Decimal("2.5")),
        {"$set": {"price": bson.Decimal128("2.5")}},
    ),
    ("a Decimal, equal", lambda d: setattr(d, "price", decimal.Decimal("1.50")), {}),
    (
        "an extra=allow embedded, declared field",
        lambda d: setattr(d.loose, "a", 5),
        {"$set": {"loose.a": 5}},
    ),
    (
        "an extra=allow embedded, extra field",
        lambda d: setattr(d.loose, "b", 7),
        {"$set": {"loose.b": 7}},
    ),
    (
        "a recursive model",
        lambda d: d.tree.children[0].children.append(Node(name="g")),
        {"$set": {"tree.children": [{"name": "c", "children": [{"name": "g", "children": []}]}]}},
    ),
    (
        "a field with its own serializer",
        lambda d: setattr(d, "loud", "def"),
        {"$set": {"loud": "DEF"}},
    ),
    (
        "an embedded field with its own serializer",
        lambda d: setattr(d.shouted, "word", "yo"),
        {"$set": {"shouted.word": "YO"}},
    ),
    (
        "a subclass instance in a list of models",
        lambda d: d.lines.__setitem__(1, SpecialLine(sku="s")),
        {
            "$set": {
                "lines": [
                    {"sku": "a", "qty": 1, "note": None},
                    {"sku": "s", "qty": 1, "note": None},
                ]
            }
        },
    ),
    (
        "an embedded model replaced",
        lambda d: setattr(d, "address", Address(city="Z")),
        {"$set": {"address.city": "Z"}},
    ),
    ("a list emptied", lambda d: d.lines.clear(), {"$set": {"lines": []}}),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [(m, e) for _, m, e in MUTATIONS], ids=[n for n, _, _ in MUTATIONS]
)
def test_each_change_sends_what_the_whole_dump_diff_sends(
    mutate: Mutation, expected: dict[str, Any]
) -> None:
    db = Database(everything())
    mutate(db.doc)
    assert db.save() == expected
    assert db.save() == {}  # and nothing more the next time


def test_changes_one_after_another() -> None:
    """Every mutation in turn on one instance, saved each time (new snapshots built from
    the old ones), then all of them again."""
    db = Database(everything())
    for _ in range(2):
        for _, mutate, _ in MUTATIONS:
            mutate(db.doc)
            db.save()
            assert db.save() == {}
        # Back to a state every mutation applies to (a change too, saved as one).
        fresh = everything()
        for name in ("lines", "tags", "meta", "anything", "tree"):
            setattr(db.doc, name, getattr(fresh, name))
        db.save()


def test_a_value_set_back_to_the_stored_one_is_no_change() -> None:
    db = Database(everything())
    doc = db.doc
    doc.name = "".join(["n", ""])  # another str object, equal to the stored one
    doc.address.city = "".join(["Par", "is"])
    doc.address = Address(city="Paris")  # a new model, equal once stored
    doc.lines = [Line(sku="a"), Line(sku="b")]
    doc.count = 1
    doc.count = 0
    assert db.save() == {}


def test_stored_keys_the_embedded_model_does_not_declare_are_unset() -> None:
    db = Database(everything())
    db.raw["address"]["old"] = 1
    raw = copy.deepcopy(db.raw)
    doc = load_documents(Everything, [raw])[0]
    db.doc = doc
    doc.address.city = "Lyon"
    assert db.save() == {"$set": {"address.city": "Lyon"}, "$unset": {"address.old": ""}}


def test_stored_keys_the_document_does_not_declare_are_left_alone() -> None:
    doc = everything()
    raw = stored(doc) | {"someone_elses": 1}
    loaded_doc = load_documents(Everything, [raw])[0]
    loaded_doc.count = 2
    update, new_snapshot = changes(loaded_doc, raw)
    assert update == {"$set": {"count": 2}}
    assert new_snapshot["someone_elses"] == 1 and raw["count"] == 0


def test_a_field_not_stored_yet_is_set() -> None:
    doc = everything()
    raw = stored(doc)
    del raw["maybe"], raw["address"]["geo"]
    loaded_doc = load_documents(Everything, [raw])[0]
    update, _ = changes(loaded_doc, raw)
    assert update == {"$set": {"maybe": None, "address.geo": {"lat": 0.0, "lng": 0.0}}}


def test_copies_share_the_snapshot_and_it_is_never_mutated() -> None:
    doc = loaded(everything())
    twin = copy.copy(doc)
    assert get_snapshot(twin) is get_snapshot(doc)
    twin.address.city = "Lyon"  # the copy is shallow: the embedded model is shared too
    twin.name = "twin"
    plan = prepare_update(twin)
    assert plan is not None
    commit_update(twin, plan[2])
    snapshot = get_snapshot(doc)
    assert snapshot is not None
    assert snapshot["name"] == "n" and snapshot["address"]["city"] == "Paris"
    assert changes(doc, snapshot)[0] == {"$set": {"address.city": "Lyon"}}


def test_a_pending_update_leaves_the_snapshot_until_it_is_marked_clean() -> None:
    doc = loaded(everything())
    before = get_snapshot(doc)
    doc.address.geo.lng = 1.0
    assert writes.pending_update(doc) is not None
    assert get_snapshot(doc) is before and before is not None
    assert before["address"]["geo"]["lng"] == 0.0
    writes.mark_clean(doc)
    after = get_snapshot(doc)
    assert after is not None and after["address"]["geo"]["lng"] == 1.0
    assert after["lines"] is before["lines"]  # unchanged parts are shared, not copied
    assert prepare_update(doc) is None


class Versioned(Document):
    address: Address = Field(default_factory=Address)
    count: int = 0

    class Meta:
        collection = "save_diff_versioned"
        optimistic_lock = True


def test_optimistic_lock_raises_the_version_in_update_and_snapshot() -> None:
    doc = loaded(Versioned())
    doc.address.city = "Lyon"
    plan = prepare_update(doc)
    assert plan is not None
    filter, update, new_snapshot = plan
    assert filter == {"_id": doc.id, "version": 0}
    assert update == {"$set": {"address.city": "Lyon", "version": 1}}
    assert new_snapshot["version"] == 1 and new_snapshot["address"]["city"] == "Lyon"
    commit_update(doc, new_snapshot)
    assert doc.version == 1 and prepare_update(doc) is None


class Pet(Document):
    name: str
    home: Address = Field(default_factory=Address)

    class Meta:
        collection = "save_diff_pets"
        polymorphic = True


class Parrot(Pet):
    words: list[str] = []


def test_polymorphic_documents_keep_their_class_key() -> None:
    doc = loaded(Parrot(name="p"))
    assert type(doc) is Parrot
    doc.home.city = "Lyon"
    doc.words.append("hi")
    assert changes(doc, get_snapshot(doc) or {})[0] == {
        "$set": {"home.city": "Lyon"},
        "$push": {"words": {"$each": ["hi"]}},
    }
    raw = stored(doc)
    del raw["_cls"]
    doc = load_documents(Parrot, [raw])[0]
    assert changes(doc, raw)[0] == {"$set": {"_cls": "Parrot"}}


class Computed(Document):
    a: int = 1

    @computed_field  # type: ignore[prop-decorator]
    @property
    def double(self) -> int:
        return self.a * 2

    class Meta:
        collection = "save_diff_computed"


class Serialized(Document):
    a: int = 1

    @model_serializer(mode="wrap")
    def _serialize(self, handler: Any) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        data["a_plus"] = self.a + 1
        return data

    class Meta:
        collection = "save_diff_serialized"


class Open(Document):
    model_config = ConfigDict(extra="allow")
    a: int = 1

    class Meta:
        collection = "save_diff_open"


class Dumps(Document):
    a: int = 1

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        data = super().model_dump(**kwargs)
        data["dumped"] = True
        return data

    class Meta:
        collection = "save_diff_dumps"


@pytest.mark.parametrize("model", [Computed, Serialized, Open, Dumps])
def test_classes_without_a_plan_are_dumped_whole(model: type[Any]) -> None:
    assert model_plan.document_plan(model) is None
    doc = loaded(model())
    assert prepare_update(doc) is None
    doc.a = 5
    plan = prepare_update(doc)
    assert plan is not None
    assert plan[1] == diff(get_snapshot(doc) or {}, doc.to_bson())
    assert plan[1]["$set"]["a"] == 5


def test_open_document_extras_replaced_are_seen() -> None:
    doc = loaded(Open(b=[1]))
    doc.b = [1, 2]
    plan = prepare_update(doc)
    assert plan is not None and plan[1] == {"$push": {"b": {"$each": [2]}}}


# pydantic keeps the very objects of the raw document as the values of extra (undeclared)
# keys: the snapshot of such a class is a deep copy (Options.shares_extras), so that an
# in-place change of a mutable extra value is seen.


def test_open_document_extras_changed_in_place_are_seen() -> None:
    doc = loaded(Open(b=[1]))
    doc.b.append(2)
    plan = prepare_update(doc)
    assert plan is not None and plan[1] == {"$push": {"b": {"$each": [2]}}}


def test_open_embedded_extras_changed_in_place_are_seen() -> None:
    doc = loaded(everything())
    doc.loose.b["deep"] = 2
    plan = prepare_update(doc)
    assert plan is not None and plan[1] == {"$set": {"loose.b.deep": 2}}


def test_an_instance_missing_a_field_falls_back_to_the_whole_dump() -> None:
    doc = loaded(everything())
    del doc.__dict__["count"]
    doc.name = "other"
    snapshot = get_snapshot(doc)
    assert snapshot is not None
    update, new_snapshot = changes(doc, snapshot)
    assert update == diff(snapshot, doc.to_bson()) == {"$set": {"name": "other"}}
    assert new_snapshot == doc.to_bson()


# -- flat models (every field an immutable value under its own name) ------------------------


class Point(Embedded):
    x: int = 0
    y: int = 0


class PlainPoint(BaseModel):
    x: int = 0
    y: int = 0


class Points(Document):
    a: Point = Field(default_factory=Point)
    b: Point = Field(default_factory=Point)
    c: Point = Field(default_factory=Point)
    items: list[Point] = []
    plain: PlainPoint = Field(default_factory=PlainPoint)

    class Meta:
        collection = "save_diff_points"


def test_which_models_are_flat() -> None:
    plan = model_plan.document_plan(Points)
    assert plan is not None
    subs = {name: sub for name, _, _, _, sub in plan.fields if sub is not None}
    assert subs["a"].flat and subs["items"].flat and subs["plain"].flat
    everything_plan = model_plan.document_plan(Everything)
    assert everything_plan is not None
    address = {name: sub for name, _, _, _, sub in everything_plan.fields}["address"]
    assert address is not None and not address.flat  # an alias and an embedded model


def test_flat_models_assigned_deleted_and_in_lists() -> None:
    db = Database(Points(items=[Point(), Point(x=1)]))
    doc = db.doc
    assert db.save() == {}
    doc.a.x = 5
    assert db.save() == {"$set": {"a.x": 5}}
    doc.items[1].y = 2
    assert db.save() == {"$set": {"items": [{"x": 0, "y": 0}, {"x": 1, "y": 2}]}}
    del doc.b.x  # pydantic allows it; the dump then lacks the key (whole-dump fallback)
    assert db.save() == {"$unset": {"b.x": ""}}
    doc.plain.x = 3  # a plain pydantic model works the same
    assert db.save() == {"$set": {"plain.x": 3}}
    doc.a.__dict__["y"] = 9  # even behind pydantic's back: values are compared
    assert db.save() == {"$set": {"a.y": 9}}
    assert db.save() == {}


def test_models_moved_copied_or_shared() -> None:
    db = Database(Points(a=Point(x=1), b=Point(x=2)))
    doc = db.doc
    assert db.save() == {}
    doc.a, doc.b = doc.b, doc.a
    assert db.save() == {"$set": {"a.x": 2, "b.x": 1}}
    doc.c = copy.copy(doc.a)
    assert db.save() == {"$set": {"c.x": 2}}
    doc.items.append(doc.a)  # the same instance in two places
    assert db.save() == {"$push": {"items": {"$each": [{"x": 2, "y": 0}]}}}
    doc.items[0].y = 7
    assert db.save() == {"$set": {"a.y": 7, "items": [{"x": 2, "y": 7}]}}
    assert db.save() == {}


def test_an_update_not_committed_is_sent_again() -> None:
    doc = loaded(Points())
    doc.a.x = 1
    plan = prepare_update(doc)  # the write "fails": no commit_update
    assert plan is not None and plan[1] == {"$set": {"a.x": 1}}
    again = prepare_update(doc)
    assert again is not None and again[1] == {"$set": {"a.x": 1}}
    commit_update(doc, again[2])
    assert prepare_update(doc) is None


# -- lists of plain values ------------------------------------------------------------------


class Lists(Document):
    words: list[str] = []
    ratios: list[float] = []
    counts: list[int] = []
    other: int = 0

    class Meta:
        collection = "save_diff_lists"


#: Items that Python takes for one another but BSON stores apart (or not at all alike).
_LIST_ITEMS = st.sampled_from([0, 1, -1, 2**40, bson.Int64(1), 0.0, -0.0, 1.0, 1.5, True, "a"])
_LIST_FIELDS = ("words", "ratios", "counts")


# A value put past validation is dumped by pydantic, which warns about its type.
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
@given(
    stored_lists=st.fixed_dictionaries(
        {name: st.lists(_LIST_ITEMS, max_size=4) for name in _LIST_FIELDS}
    ),
    edits=st.lists(
        st.tuples(
            st.sampled_from(_LIST_FIELDS),
            st.sampled_from(["append", "replace", "same_copy", "bypass", "other"]),
            st.lists(_LIST_ITEMS, max_size=3),
        ),
        max_size=4,
    ),
)
def test_lists_of_plain_values_send_what_the_whole_dump_diff_sends(
    stored_lists: dict[str, list[Any]], edits: list[tuple[str, str, list[Any]]]
) -> None:
    """An unchanged list of plain values is passed over without being dumped; whatever was
    stored (ints in a float list, bools, Int64) and however the list was changed (validated
    assignment, an in-place append, a value put past validation), save() sends what the
    whole-dump diff sends, and the server then holds the document's dump."""
    raw: dict[str, Any] = {"_id": bson.ObjectId(), "other": 0}
    for name, items in stored_lists.items():
        raw[name] = [item for item in items if _fits(name, item)]
    db = Database.__new__(Database)
    db.raw = copy.deepcopy(raw)
    db.doc = load_documents(Lists, [raw])[0]
    db.save()  # a stored int read into a float list is rewritten as the double it holds
    for name, action, items in edits:
        value = [item for item in items if _fits(name, item)]
        current = getattr(db.doc, name)
        if action == "append":
            current.extend(value)
        elif action == "replace":
            setattr(db.doc, name, value)
        elif action == "same_copy":
            try:  # validated: refused when an item put past validation does not fit
                setattr(db.doc, name, list(current))
            except ValidationError:
                continue
        elif action == "bypass":  # model_construct-like: neither validated nor copied
            db.doc.__dict__[name] = items
        else:
            db.doc.other += 1
        db.save()


def _fits(name: str, item: Any) -> bool:
    """Whether ``item`` validates (lax mode, as loading does) in the list field ``name``."""
    if name == "words":
        return isinstance(item, str)
    if name == "counts":
        return not isinstance(item, str) and float(item).is_integer()
    return not isinstance(item, str)


# -- the usual save, found in one pass (save_plan._usual) ----------------------------------


class UsualDim(Embedded):
    width: float = 1.0
    unit: str = "cm"


class UsualDoc(Document):
    name: str = "n"
    count: int = 0
    ratio: float = 0.0
    flag: bool = False
    when: dt.datetime | None = None
    tags: list[str] = []
    dim: UsualDim = Field(default_factory=UsualDim)
    dims: list[UsualDim] = []
    anything: Any = None

    class Meta:
        collection = "save_diff_usual"
        polymorphic = True


class UsualChild(UsualDoc):
    extra: int = 0


_USUAL_VALUES = st.sampled_from(
    [0, 1, -1, 2**40, bson.Int64(1), 0.0, -0.0, 1.0, 1.5, True, False, None, "s", "", "n"]
)
_USUAL_STEPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["name", "count", "ratio", "flag", "when", "tags", "dim", "dims", "anything",
             "extra", "dim.width", "del"]
        ),
        _USUAL_VALUES,
        st.sampled_from(["assign", "bypass"]),
    ),
    max_size=4,
)


def _bson(value: Any) -> bytes:
    return bson.encode({"v": value}, codec_options=CODEC_OPTIONS)


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
@given(
    child=st.booleans(),
    stored_ints=st.sampled_from([(), ("ratio",), ("width",), ("ratio", "width")]),
    steps=_USUAL_STEPS,
)
def test_the_usual_save_sends_what_the_walk_sends(
    child: bool, stored_ints: tuple[str, ...], steps: list[tuple[str, Any, str]]
) -> None:
    """For any change (validated, or put past validation), the one-pass detection either
    steps aside or gives exactly the walk's update and new snapshot (BSON types included),
    and never mutates the old snapshot."""
    model = UsualChild if child else UsualDoc
    source = model(tags=["a"], dims=[UsualDim()], when=dt.datetime(2024, 1, 2, 3, 4, 5, 6000))
    raw = stored(source)
    # Stored as ints: the doubles the model holds are changes to send.
    if "ratio" in stored_ints:
        raw["ratio"] = 0
    if "width" in stored_ints:
        raw["dim"]["width"] = 1
    doc = load_documents(model, [raw])[0]
    for name, value, how in steps:
        target, attr = (doc.dim, "width") if name == "dim.width" else (doc, name)
        if not isinstance(target, BaseModel):  # dim itself was replaced past validation
            continue
        if name == "del":
            doc.__dict__.pop("count", None)
            continue
        if attr not in type(target).model_fields:
            continue
        if how == "bypass":
            target.__dict__[attr] = value
        else:
            try:
                setattr(target, attr, value)
            except ValueError:
                continue
    snapshot = get_snapshot(doc)
    assert snapshot is not None
    before = copy.deepcopy(snapshot)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(save_plan, "_usual", lambda *args: None)
        try:
            walked = changes(doc, snapshot)
        except ValidationError:  # a value put past validation that the model refuses
            with pytest.raises(ValidationError):
                changes(doc, snapshot)  # refused in one pass too: it steps aside for it
            assert snapshot == before
            return
    result = changes(doc, snapshot)
    assert snapshot == before and _bson(snapshot) == _bson(before)
    assert _bson(result[0]) == _bson(walked[0])
    assert _bson(result[1]) == _bson(walked[1])


def test_the_usual_save_is_found_in_one_pass() -> None:
    doc = load_documents(UsualDoc, [stored(UsualDoc(tags=["a"], dims=[UsualDim()]))])[0]
    doc.count += 1
    snapshot = get_snapshot(doc)
    assert snapshot is not None
    plan = model_plan.document_plan(UsualDoc)
    assert plan is not None
    usual = save_plan._usual(plan, doc.__dict__, snapshot, UsualDoc._meta.class_name)
    assert usual is not None and usual[0] == {"$set": {"count": 1}}
    doc.dim.width = 2.0  # a sub-document changed: left to the walk
    assert save_plan._usual(plan, doc.__dict__, snapshot, UsualDoc._meta.class_name) is None
