"""``Meta.optimistic_lock`` is not fooled by a delete and an insert of the same ``_id``.

An object loaded from one stored document (one *incarnation* of its ``_id``) may save or
delete only that document: once it is deleted and its ``_id`` inserted again, by a copy of the
object, another object, ``bulk_create``, with an explicit version or not, the stale object's
write raises :class:`odm.StaleDocument` instead of landing on the newer document. An insert
starts the counter at 0 only for an id odm just made for the object (no earlier document can
have had it); any other insert starts it at a fresh number no earlier object can hold.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import bson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import odm
from odm.document import Document
from odm.models.tracking import Unsure, get_snapshot
from tests.properties import server_property


class LrItem(Document):
    n: int = 0

    class Meta:
        collection = "lr_items"
        optimistic_lock = True


class LrSetting(Document):
    """One document per collection: every new object has the same id."""

    id: str = odm.Field(default="site", alias="_id")
    n: int = 0

    class Meta:
        collection = "lr_settings"
        optimistic_lock = True


@pytest.fixture
def database(odm_database: Any) -> Any:
    """The test's database, through the driver (no command log: the hypothesis test's would
    grow with every example)."""
    return odm_database


async def stored_item(database: Any, ident: Any) -> dict[str, Any] | None:
    """The raw stored document of ``ident``, or ``None``."""
    found: dict[str, Any] | None = await database.lr_items.find_one({"_id": ident})
    return found


async def test_a_copy_reinserted_does_not_let_a_stale_copy_save(
    database: Any,
) -> None:
    """The reported case: ``b``, a copy of ``a``, deletes and inserts the document again;
    ``c``, another copy with a change of its own, is stale and must not write over it."""
    loaded = await LrItem(n=0).insert()
    a = await LrItem.objects.get(id=loaded.id)
    c = copy.copy(a)
    c.n = 1
    b = copy.copy(a)
    await b.delete()
    b.n = 5
    await b.insert()
    with pytest.raises(odm.StaleDocument, match="LrItem"):
        await c.save()
    a.n = 2
    with pytest.raises(odm.StaleDocument):
        await a.save()  # the original too
    with pytest.raises(odm.StaleDocument):
        await a.delete()  # nor may it delete the newer document
    stored = await stored_item(database, a.id)
    assert stored is not None and stored["n"] == 5
    assert stored["version"] == b.version != a.version


@pytest.mark.parametrize("how", ["new object", "explicit version", "bulk_create", "save"])
async def test_another_insert_of_the_id_makes_the_loaded_object_stale(
    database: Any, how: str
) -> None:
    """As from another process: the document is deleted and an object built with its id is
    inserted (even with the very version the loaded object holds)."""
    ident = bson.ObjectId()
    await LrItem(id=ident, n=0).insert()
    held = await LrItem.objects.get(id=ident)
    await (await LrItem.objects.get(id=ident)).delete()
    again = LrItem(id=ident, n=5, version=held.version)
    if how == "bulk_create":
        await LrItem.objects.bulk_create([again])
    elif how == "save":
        await again.save()
    else:
        if how == "new object":
            again = LrItem(id=ident, n=5)
        await again.insert()
    assert again.version != held.version
    held.n = 1
    with pytest.raises(odm.StaleDocument):
        await held.save()
    stored = await stored_item(database, ident)
    assert stored is not None and (stored["n"], stored["version"]) == (5, again.version)


async def test_an_id_of_the_class_default_is_not_one_odm_made(database: Any) -> None:
    """A default id shared by every new object (a singleton document) may have been stored
    before: a new object's insert of it does not start at 0 again."""
    first = await LrSetting().insert()
    held = await LrSetting.objects.get(id="site")
    await first.delete()
    again = await LrSetting(n=5).insert()
    assert again.version != held.version
    held.n = 1
    with pytest.raises(odm.StaleDocument):
        await held.save()
    assert (await database.lr_settings.find_one({}))["n"] == 5


async def test_a_reinsert_inside_a_transaction_makes_a_stale_copy_stale(
    database: Any,
) -> None:
    loaded = await LrItem(n=0).insert()
    a = await LrItem.objects.get(id=loaded.id)
    c = copy.copy(a)
    c.n = 1
    with pytest.raises(odm.StaleDocument):
        async with odm.transaction():
            b = copy.copy(a)
            await b.delete()
            b.n = 5
            await b.insert()
            await c.save()
    stored = await stored_item(database, a.id)
    assert stored is not None and stored["n"] == 0  # the block aborted


async def test_a_new_document_with_an_id_odm_made_starts_at_zero(
    database: Any,
) -> None:
    """The counter users see: a new document starts at 0 and each save raises it by one;
    only an insert of an id that may have been stored before starts elsewhere."""
    item = await LrItem(n=1).insert()
    assert item.version == 0
    assert (await stored_item(database, item.id) or {})["version"] == 0
    item.n = 2
    await item.save()
    assert item.version == 1
    await item.delete()
    await item.insert()  # its id was stored before: not 0 again
    assert item.version not in (0, 1)
    start = item.version
    item.n = 3
    await item.save()
    assert item.version == start + 1
    assert (await stored_item(database, item.id) or {})["version"] == start + 1


async def test_a_reinsert_cut_off_knows_the_version_it_sent(database: Any, hold: Any) -> None:
    """An insert again cut off after it ran: the object holds the version it sent, so its next
    ``save()`` finds nothing to send, and it tells what is stored."""
    item = await LrItem(n=1).insert()
    await item.delete()
    await hold("insert", True, 150)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await item.insert()
    await hold.over()  # the server is done with the held insert
    assert isinstance(get_snapshot(item), Unsure)
    sent = item.version
    await item.save()  # nothing to send: what is stored is what it holds
    stored = await stored_item(database, item.id)
    assert stored is not None and stored["version"] == sent == item.version not in (0, 1)
    assert get_snapshot(item) == stored == item.to_bson()


async def test_a_version_stored_before_keeps_loading_and_counting(
    database: Any,
) -> None:
    """Documents stored by an earlier release (small integer versions) load and save as ever."""
    ident = bson.ObjectId()
    await database.lr_items.insert_one({"_id": ident, "n": 1, "version": 7})
    item = await LrItem.objects.get(id=ident)
    assert item.version == 7
    item.n = 2
    await item.save()
    assert (await stored_item(database, ident) or {})["version"] == 8
    assert await LrItem.objects.filter(id=ident, version=8).update(n=3) == 1
    assert (await stored_item(database, ident) or {})["version"] == 9


# -- any sequence of loads, copies, changes, saves, deletes and inserts --------------------

ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["load", "copy", "save", "delete", "insert", "insert_new", "bulk"]),
        st.integers(0, 5),
    ),
    min_size=1,
    max_size=14,
)
IDENT = bson.ObjectId("0000000000000000000000aa")


class Pool:
    """The objects of the one ``_id`` a sequence plays with, each with the incarnation (the
    number of the insert that stored it) its snapshot is of; ``current``: the stored one."""

    def __init__(self) -> None:
        self.objects: list[tuple[LrItem, int | None]] = []
        self.current: int | None = None
        self.inserts = 0
        self.values = 0

    def pick(self, index: int) -> tuple[int, LrItem, int | None] | None:
        if not self.objects:
            return None
        at = index % len(self.objects)
        return at, *self.objects[at]

    def value(self) -> int:
        self.values += 1
        return self.values

    def inserted(self) -> int:
        self.inserts += 1
        self.current = self.inserts
        return self.inserts


async def play(pool: Pool, action: str, index: int) -> None:
    """Run one action; fail when a write lands on another incarnation than its object's."""
    picked = pool.pick(index)
    if action == "load":
        found = await LrItem.objects.filter(id=IDENT).first()
        if found is not None:
            pool.objects.append((found, pool.current))
    elif action == "copy" and picked:
        _, obj, born = picked
        pool.objects.append((copy.copy(obj), born))
    elif action == "save" and picked:
        at, obj, born = picked
        if not obj.is_stored:
            return
        obj.n = pool.value()
        try:
            await obj.save()
        except (odm.StaleDocument, LrItem.DoesNotExist):
            return
        assert born == pool.current, f"a save of incarnation {born} landed on {pool.current}"
        pool.objects[at] = (obj, born)
    elif action == "delete" and picked:
        at, obj, born = picked
        if not obj.is_stored:
            return
        try:
            await obj.delete()
        except odm.StaleDocument:
            return
        assert born == pool.current, f"a delete of incarnation {born} removed {pool.current}"
        pool.current = None
        pool.objects[at] = (obj, None)
    elif action in ("insert", "insert_new", "bulk"):
        if action == "insert" and picked:
            at, obj, _ = picked
            if obj.is_stored:
                return
        else:
            # Built elsewhere, with the version some object of the id holds, or 0.
            versions = [held.version for held, _ in pool.objects] or [0]
            obj = LrItem(id=IDENT, n=pool.value(), version=versions[index % len(versions)])
            pool.objects.append((obj, None))
            at = len(pool.objects) - 1
        if pool.current is not None:
            return  # would be refused as a duplicate key
        if action == "bulk":
            await LrItem.objects.bulk_create([obj])
        else:
            await obj.insert()
        pool.objects[at] = (obj, pool.inserted())


@server_property(max_examples=20)
@given(actions=ACTIONS)
@example(  # the reported sequence: a copy deleted and inserted again, then a stale copy saved
    actions=[("insert_new", 0), ("load", 0), ("copy", 1), ("copy", 1), ("delete", 3),
             ("insert", 3), ("save", 2)]
)
@example(  # another process inserts with the version the loaded object holds
    actions=[("insert_new", 0), ("load", 0), ("delete", 1), ("insert_new", 1), ("save", 1),
             ("delete", 1)]
)
async def test_every_write_lands_on_its_own_incarnation(
    database: Any, actions: list[tuple[str, int]]
) -> None:
    await database.lr_items.delete_many({})
    pool = Pool()
    for action, index in actions:
        await play(pool, action, index)
    stored = await stored_item(database, IDENT)
    assert (stored is None) == (pool.current is None)
