"""What save() sends for nested documents, against the real server and its command log.

save() compares the instance with its snapshot field by field (odm.models.save_plan.changes)
rather than dumping the whole document; these tests pin the commands it sends and check
that the stored document always ends up as the model dumps it, save after save.
"""

from __future__ import annotations

import copy
import math
import pickle
from typing import Any

import bson
import pytest
from pydantic import ConfigDict, ValidationError

import odm
from odm import executor
from odm.contrib.pytest import MonitoredDatabase
from odm.document import Document, Embedded
from odm.models.diffing import diff
from odm.models.fields import Field
from odm.models.loading import load_documents


class DiffLine(Embedded):
    sku: str
    qty: int = 1


class DiffAddress(Embedded):
    city: str = "Paris"
    zip_code: str = Field(default="75000", alias="zip")


class DiffLoose(Embedded):
    model_config = ConfigDict(extra="allow")
    a: int = 0


class DiffOrder(Document):
    number: int = 0
    address: DiffAddress = Field(default_factory=DiffAddress)
    billing: DiffAddress | None = None
    lines: list[DiffLine] = []
    notes: dict[str, Any] = {}
    loose: DiffLoose = Field(default_factory=DiffLoose)

    class Meta:
        collection = "save_diff_orders"


class DiffLocked(Document):
    address: DiffAddress = Field(default_factory=DiffAddress)

    class Meta:
        collection = "save_diff_locked"
        optimistic_lock = True


class DiffTenanted(Document):
    tenant: str
    address: DiffAddress = Field(default_factory=DiffAddress)

    class Meta:
        collection = "save_diff_tenanted"
        shard_key = ("tenant", "id")


class DiffShape(Document):
    address: DiffAddress = Field(default_factory=DiffAddress)

    class Meta:
        collection = "save_diff_shapes"
        polymorphic = True


class DiffSquare(DiffShape):
    side: int = 1


async def load(model: type[Any], id: Any) -> Any:
    raw = await executor.find_one(model, {"_id": id})
    assert raw is not None
    return load_documents(model, [raw])[0]


async def sent(monitored: MonitoredDatabase, doc: Document) -> dict[str, Any] | None:
    """Save ``doc``; return the update it sent (None: no command), and check that the
    stored document is now what the model dumps."""
    monitored.log.clear()
    await doc.save()
    updates = monitored.log.named("update")
    assert len(monitored.log.commands) == len(updates) <= 1
    stored = await executor.find_one(type(doc), {"_id": doc.id})
    assert stored is not None and diff(stored, doc.to_bson()) == {}
    return updates[0]["updates"][0]["u"] if updates else None


async def test_nested_changes_save_after_save(monitored: MonitoredDatabase) -> None:
    order = DiffOrder(lines=[DiffLine(sku="a"), DiffLine(sku="b")], notes={"k": {"n": 1}})
    await order.insert()
    doc = await load(DiffOrder, order.id)

    doc.lines[0].qty = 5  # an item of a list of models, in place: the list is set whole
    assert await sent(monitored, doc) == {
        "$set": {"lines": [{"sku": "a", "qty": 5}, {"sku": "b", "qty": 1}]}
    }
    doc.lines.append(DiffLine(sku="c"))
    assert await sent(monitored, doc) == {
        "$push": {"lines": {"$each": [{"sku": "c", "qty": 1}]}}
    }
    doc.address.zip_code = "69000"  # aliased, in an embedded model
    assert await sent(monitored, doc) == {"$set": {"address.zip": "69000"}}
    doc.address.city = "Lyon"  # the same embedded model again, after a save
    assert await sent(monitored, doc) == {"$set": {"address.city": "Lyon"}}
    doc.notes["k"]["n"] = 2
    assert await sent(monitored, doc) == {"$set": {"notes.k.n": 2}}
    del doc.notes["k"]
    doc.notes["other"] = True
    assert await sent(monitored, doc) == {
        "$set": {"notes.other": True},
        "$unset": {"notes.k": ""},
    }
    doc.billing = DiffAddress(city="Nice")
    assert await sent(monitored, doc) == {"$set": {"billing": {"city": "Nice", "zip": "75000"}}}
    doc.billing.city = "Nantes"
    assert await sent(monitored, doc) == {"$set": {"billing.city": "Nantes"}}
    doc.billing = None
    assert await sent(monitored, doc) == {"$set": {"billing": None}}
    doc.loose.b = [1]  # extra="allow": an undeclared key
    assert await sent(monitored, doc) == {"$set": {"loose.b": [1]}}
    assert await sent(monitored, doc) is None

    again = await load(DiffOrder, order.id)
    assert again.model_dump() == doc.model_dump()


async def test_a_value_set_back_sends_nothing(monitored: MonitoredDatabase) -> None:
    order = DiffOrder(lines=[DiffLine(sku="a")])
    await order.insert()
    doc = await load(DiffOrder, order.id)
    assert await sent(monitored, doc) is None
    doc.address.city = "Lyon"
    doc.address.city = "Paris"
    doc.lines[0].qty = 2
    doc.lines[0].qty = 1
    doc.address = DiffAddress()
    doc.number = 0
    assert await sent(monitored, doc) is None


async def test_undeclared_keys_of_a_changed_embedded_document_are_unset(
    monitored: MonitoredDatabase,
) -> None:
    order = DiffOrder()
    await order.insert()
    await monitored.database.save_diff_orders.update_one(
        {"_id": order.id}, {"$set": {"address.old": 1, "someone_elses": 2}}
    )
    doc = await load(DiffOrder, order.id)
    doc.address.city = "Lyon"
    monitored.log.clear()
    await doc.save()
    (update,) = monitored.log.named("update")
    assert update["updates"][0]["u"] == {
        "$set": {"address.city": "Lyon"},
        "$unset": {"address.old": ""},
    }
    stored = await monitored.database.save_diff_orders.find_one({"_id": order.id})
    assert stored["someone_elses"] == 2 and "old" not in stored["address"]


async def test_optimistic_lock_with_a_nested_change(monitored: MonitoredDatabase) -> None:
    doc = DiffLocked()
    await doc.insert()
    first, second = await load(DiffLocked, doc.id), await load(DiffLocked, doc.id)
    first.address.city = "Lyon"
    monitored.log.clear()
    await first.save()
    (update,) = monitored.log.named("update")
    assert update["updates"][0]["q"] == {"_id": doc.id, "version": 0}
    assert update["updates"][0]["u"] == {"$set": {"address.city": "Lyon", "version": 1}}
    assert first.version == 1
    second.address.city = "Nice"
    with pytest.raises(odm.StaleDocument):
        await second.save()
    second.address.city = "Paris"  # as loaded: nothing to send, so nothing stale either
    await second.save()
    first.address.city = "Nice"
    await first.save()
    stored = await monitored.database.save_diff_locked.find_one({})
    assert stored["address"]["city"] == "Nice" and stored["version"] == 2


async def test_shard_key_and_class_key_with_a_nested_change(
    monitored: MonitoredDatabase,
) -> None:
    tenanted = DiffTenanted(tenant="acme")
    await tenanted.insert()
    tenanted.address.city = "Lyon"
    monitored.log.clear()
    await tenanted.save()
    (update,) = monitored.log.named("update")
    assert update["updates"][0]["q"] == {"_id": tenanted.id, "tenant": "acme"}
    assert update["updates"][0]["u"] == {"$set": {"address.city": "Lyon"}}

    square = DiffSquare(side=2)
    await square.insert()
    loaded = await load(DiffShape, square.id)
    assert type(loaded) is DiffSquare
    loaded.address.city = "Lyon"
    loaded.side = 3
    assert await sent(monitored, loaded) == {"$set": {"side": 3, "address.city": "Lyon"}}
    stored = await monitored.database.save_diff_shapes.find_one({"_id": square.id})
    assert stored["_cls"] == "DiffSquare"


class DiffOpen(Document):
    model_config = ConfigDict(extra="allow")
    name: str = ""

    class Meta:
        collection = "save_diff_open_documents"


async def test_extra_values_changed_in_place_after_a_load_are_saved(
    monitored: MonitoredDatabase,
) -> None:
    """pydantic keeps a loaded document's own objects as extra (undeclared) values; the
    snapshot is a copy, so an in-place change to them is seen (it used to be lost)."""
    await monitored.database.save_diff_open_documents.insert_one({"name": "n", "tags": ["a"]})
    raw = await monitored.database.save_diff_open_documents.find_one({})
    doc = await load(DiffOpen, raw["_id"])
    doc.tags.append("b")  # type: ignore[attr-defined]
    assert await sent(monitored, doc) == {"$push": {"tags": {"$each": ["b"]}}}
    order = DiffOrder()
    await order.insert()
    await monitored.database.save_diff_orders.update_one(
        {"_id": order.id}, {"$set": {"loose.b": {"deep": 1}}}
    )
    loaded_order = await load(DiffOrder, order.id)
    loaded_order.loose.b["deep"] = 2  # type: ignore[attr-defined]
    assert await sent(monitored, loaded_order) == {"$set": {"loose.b.deep": 2}}
    stored = await monitored.database.save_diff_open_documents.find_one({})
    assert stored["tags"] == ["a", "b"]


# -- issue #19: dict keys are data, copies, BSON types ----------------------------------------


async def test_dict_keys_that_are_not_path_segments_are_never_paths(
    monitored: MonitoredDatabase,
) -> None:
    """Item 2: a key with a dot, a ``$``, the empty key or a positional form is data: a
    change under it sets the nearest sub-document that can be named, whole."""
    order = DiffOrder(notes={"a.b": 1, "tags": [1, 2], "deep": {"x": {"$y": 1}}})
    await order.insert()
    order.notes["a.b"] = 2
    assert await sent(monitored, order) == {"$set": {"notes": order.notes}}
    order.notes["tags.$[]"] = 0  # once overwrote every element of notes.tags
    order.notes["deep"]["x"]["$y"] = 2
    order.notes["deep"]["z"] = 3
    assert await sent(monitored, order) == {"$set": {"notes": order.notes}}
    order.notes["deep"]["x"]["$y"] = 3
    assert await sent(monitored, order) == {"$set": {"notes.deep.x": {"$y": 3}}}
    order.notes[""] = 1  # once a raw WriteError ('notes.' has an empty field name)
    order.notes["$"] = 1
    assert await sent(monitored, order) == {"$set": {"notes": order.notes}}
    del order.notes["a.b"]
    order.notes["plain"] = 1
    assert await sent(monitored, order) == {"$set": {"notes": order.notes}}
    stored = await monitored.database.save_diff_orders.find_one({"_id": order.id})
    assert stored["notes"] == {
        "tags": [1, 2], "deep": {"x": {"$y": 3}, "z": 3}, "tags.$[]": 0, "": 1, "$": 1,
        "plain": 1,
    }
    # A key that is unchanged does not stop its siblings from being named.
    order.notes["plain"] = 2
    assert await sent(monitored, order) == {"$set": {"notes.plain": 2}}


async def test_stored_keys_that_are_not_path_segments_are_never_unset_by_path(
    monitored: MonitoredDatabase,
) -> None:
    """Item 2: a key stored by others under an embedded document is dropped by setting the
    document whole, not by an ``$unset`` of a path that names another field."""
    order = DiffOrder()
    await order.insert()
    await monitored.database.save_diff_orders.update_one(
        {"_id": order.id}, {"$set": {"address": {"city": "Paris", "zip": "75000", "a.b": 1,
                                                 "a": {"b": 2}}}}
    )
    doc = await load(DiffOrder, order.id)
    doc.address.city = "Lyon"
    assert await sent(monitored, doc) == {"$set": {"address": {"city": "Lyon", "zip": "75000"}}}


async def test_keys_no_update_can_write_are_a_validation_error(
    monitored: MonitoredDatabase,
) -> None:
    """Item 2: a top-level key an update cannot name (a model with ``extra="allow"``), and a
    key BSON cannot hold (a NUL byte), are a ValidationError naming the field; nothing is
    sent."""
    doc = DiffOpen(name="n")
    await doc.insert()
    for key in ("$x", "", "a.b"):
        setattr(doc, key, 1)
        monitored.log.clear()
        with pytest.raises(ValidationError) as info:
            await doc.save()
        assert info.value.errors()[0]["loc"] == (key,)
        assert monitored.log.named("update") == []
        delattr(doc, key)
    order = DiffOrder()
    await order.insert()
    order.notes["a\x00b"] = 1
    monitored.log.clear()
    with pytest.raises(ValidationError) as info:
        await order.save()
    assert info.value.errors()[0]["loc"][0] == "notes"
    assert monitored.log.named("update") == []
    stored = await monitored.database.save_diff_orders.find_one({"_id": order.id})
    assert stored["notes"] == {}


@pytest.mark.parametrize(
    "pair",
    [lambda d: (d, copy.copy(d)), lambda d: (d, d.model_copy()), lambda d: (d, copy.deepcopy(d)),
     lambda d: (d, d.model_copy(deep=True)),
     lambda d: tuple(pickle.loads(pickle.dumps([d, copy.copy(d)])))],
    ids=["copy", "model_copy", "deepcopy", "model_copy_deep", "pickled_together"],
)
async def test_each_save_of_copies_stores_that_object(
    monitored: MonitoredDatabase, pair: Any
) -> None:
    """Item 3: copies that share a list no longer push an append twice, and after a save
    through any copy the stored document is that copy's fields."""
    inserted = DiffOrder(lines=[DiffLine(sku="a")], notes={"t": ["a"]})
    await inserted.insert()
    order, twin = pair(inserted)
    order.lines.append(DiffLine(sku="b"))
    order.notes["t"].append("b")
    order.number = 1
    await sent(monitored, order)
    # Shared lists: twin now holds what order stored (nothing to send); its own
    # number 0 is what it stores.
    await sent(monitored, twin)
    stored = await monitored.database.save_diff_orders.find_one({"_id": order.id})
    assert stored["lines"] == twin.to_bson()["lines"] and stored["number"] == 0
    twin.lines.append(DiffLine(sku="c"))
    await sent(monitored, twin)
    await sent(monitored, order)
    stored = await monitored.database.save_diff_orders.find_one({"_id": order.id})
    assert [line["sku"] for line in stored["lines"]] == [line.sku for line in order.lines]


async def test_values_equal_in_python_but_not_in_bson_are_saved(
    monitored: MonitoredDatabase,
) -> None:
    """Item 4: ``-0.0`` over ``0.0``, ``1.0`` over an int ``1``, ``True`` over ``1``,
    ``1`` over an int64 ``1`` are changes, in dicts, ``Any`` values and typed fields."""
    order = DiffOrder(notes={"z": 0.0, "one": 1, "flag": 1, "long": bson.Int64(1)})
    await order.insert()
    order.notes.update(z=-0.0, one=1.0, flag=True, long=1)
    assert await sent(monitored, order) == {
        "$set": {"notes.z": -0.0, "notes.one": 1.0, "notes.flag": True, "notes.long": 1}
    }
    stored = await monitored.database.save_diff_orders.find_one({"_id": order.id})
    assert [type(v) for v in stored["notes"].values()] == [float, float, bool, int]
    assert math.copysign(1.0, stored["notes"]["z"]) == -1.0
    await monitored.database.save_diff_lines.insert_one({"lat": 1, "lng": 0.0})
    raw = await monitored.database.save_diff_lines.find_one({})
    point = await load(DiffPoint, raw["_id"])
    point.lng = -0.0  # a float field: 1 was loaded as 1.0, stored as int32 1
    assert await sent(monitored, point) == {"$set": {"lat": 1.0, "lng": -0.0}}
    stored = await monitored.database.save_diff_lines.find_one({})
    assert type(stored["lat"]) is float and math.copysign(1.0, stored["lng"]) == -1.0


class DiffPoint(Document):
    lat: float = 0.0
    lng: float = 0.0

    class Meta:
        collection = "save_diff_lines"
