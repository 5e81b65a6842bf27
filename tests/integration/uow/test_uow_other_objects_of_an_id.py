"""Inside ``odm.transaction()``, another object of a document the block holds (not a copy of
the held one: loaded before the block, unpickled, or the object whose ``id`` was changed away
and back while the block loaded the document again) is saved. The held object was not told:
it went on showing the values from before, so a change computed from them (``held.n += 1``)
wrote over the other's save at the commit, and it kept saying the old values were stored.

Now both read the stored document after such a save (only then) and learn it: the held one
keeps its own changes (sent on top by the flush, which writes only what it changed itself),
and under the optimistic lock one with changes of its own made before the other's save is
refused as stale at the commit. An abort takes back what they learnt.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Awaitable, Callable
from typing import Any

import bson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from uow_support import fail_points_off, stored, truthful

import odm
from odm import transaction
from odm.models.tracking import get_snapshot
from tests.properties import server_property


class OoItem(odm.Document):
    n: int = 0
    m: int = 0
    k: int = 0
    tags: list[str] = []

    class Meta:
        collection = "oo_items"


class OoLocked(odm.Document):
    n: int = 0
    m: int = 0

    class Meta:
        collection = "oo_locked"
        optimistic_lock = True


class Abort(Exception):
    """The block's own failure."""


Held = tuple[Any, Any]  # (the object the block holds, another object of its id)


async def loaded_before(model: type[Any], ident: Any, before: Any) -> Held:
    return await model.objects.get(id=ident), before


async def unpickled(model: type[Any], ident: Any, before: Any) -> Held:
    held = await model.objects.get(id=ident)
    return held, pickle.loads(pickle.dumps(held))  # a lone pickle: no copy of the held one


async def id_changed_back(model: type[Any], ident: Any, before: Any) -> Held:
    other = await model.objects.get(id=ident)
    other.id = bson.ObjectId()  # a new document: the block loads the old id afresh
    held = await model.objects.get(id=ident)
    other.id = ident  # the old document again, beside the object the block now holds
    assert held is not other
    return held, other


#: How the block comes to hold one object of an id while another is saved: each is called
#: inside the block, with an object of the id loaded before it.
OTHERS: dict[str, Callable[[type[Any], Any, Any], Awaitable[Held]]] = {
    "loaded_before": loaded_before,
    "unpickled": unpickled,
    "id_changed_back": id_changed_back,
}


@pytest.mark.parametrize("how", sorted(OTHERS))
async def test_the_held_object_learns_what_the_other_saved(odm_database: Any, how: str) -> None:
    item = await OoItem().insert()
    before = await OoItem.objects.get(id=item.id)
    async with transaction():
        held, other = await OTHERS[how](OoItem, item.id, before)
        other.n = 5
        await other.save()
        assert held.n == 5 and get_snapshot(held) == get_snapshot(other)
        held.n += 1  # computed from what is stored
        held.m = 3
    raw = await stored(item) or {}
    assert (raw["n"], raw["m"]) == (6, 3)
    await truthful(held, fields=True)
    # The other object is a copy of its time again (the flush wrote after its save), and its
    # next save sends only its own change, never the values it does not know.
    other.tags.append("o")
    await other.save()
    raw = await stored(item) or {}
    assert (raw["n"], raw["m"], raw["tags"]) == (6, 3, ["o"])


async def test_the_held_objects_own_changes_stay_and_go_on_top(odm_database: Any) -> None:
    item = await OoItem(tags=["s"]).insert()
    other = await OoItem.objects.get(id=item.id)
    async with transaction():
        held = await OoItem.objects.get(id=item.id)
        held.m = 7
        held.tags.append("held")
        other.n = 5
        other.tags.append("other")
        await other.save()
        assert (held.n, held.m, held.tags) == (5, 7, ["s", "other", "held"])
    raw = await stored(item) or {}
    assert (raw["n"], raw["m"], raw["tags"]) == (5, 7, ["s", "other", "held"])
    await truthful(held, fields=True)


async def test_an_abort_takes_back_what_both_learnt(odm_database: Any) -> None:
    item = await OoItem().insert()
    other = await OoItem.objects.get(id=item.id)
    with pytest.raises(Abort):
        async with transaction():
            held = await OoItem.objects.get(id=item.id)
            held.m = 7
            other.n = 5
            await other.save()
            assert (held.n, held.m) == (5, 7)
            raise Abort
    assert (held.n, held.m) == (0, 7)  # what it learnt goes; its own change stays
    assert (other.n, other.m) == (5, 0)  # its save was rolled back: its intent stays
    await truthful(held)
    await truthful(other)
    await other.save()
    await held.save()
    raw = await stored(item) or {}
    assert (raw["n"], raw["m"]) == (5, 7)


async def test_under_the_lock_a_held_object_changed_before_is_stale(odm_database: Any) -> None:
    item = await OoLocked().insert()
    other = await OoLocked.objects.get(id=item.id)
    with pytest.raises(odm.StaleDocument):
        async with transaction():
            held = await OoLocked.objects.get(id=item.id)
            held.m = 7  # made on version 0
            other.n = 5
            await other.save()  # version 1
    assert (await stored(item) or {})["version"] == 0
    await truthful(held)


async def test_under_the_lock_a_held_object_changed_after_is_not(odm_database: Any) -> None:
    item = await OoLocked().insert()
    other = await OoLocked.objects.get(id=item.id)
    async with transaction():
        held = await OoLocked.objects.get(id=item.id)
        other.n = 5
        await other.save()
        assert held.version == 1
        held.m = 7  # made on version 1
    raw = await stored(item) or {}
    assert (raw["n"], raw["m"], raw["version"]) == (5, 7, 2)
    await truthful(held, fields=True)


# -- at random: the held object always knows what is stored --------------------------------------

FIELDS = ("n", "m", "k")
STEPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["held", "other"]), st.sampled_from(FIELDS), st.integers(1, 3)),
        st.tuples(st.sampled_from(["save_held", "save_other", "flush"])),
    ),
    min_size=1,
    max_size=8,
)


def own_changes(document: OoItem) -> dict[str, int]:
    """The fields ``document`` changed since what it knows is stored (what a write sends)."""
    snapshot = get_snapshot(document) or {}
    return {f: getattr(document, f) for f in FIELDS if getattr(document, f) != snapshot.get(f)}


@pytest.mark.odm_drivers("pymongo")
@server_property(max_examples=25)
@given(steps=STEPS)
async def test_the_held_object_never_writes_what_it_did_not_change(
    odm_database: Any, steps: list[tuple[Any, ...]]
) -> None:
    item = await OoItem().insert()
    other = await OoItem.objects.get(id=item.id)
    expected = {f: 0 for f in FIELDS}
    async with transaction() as uow:
        held = await OoItem.objects.get(id=item.id)
        for step in steps:
            if step[0] in ("held", "other"):
                who, field, value = step
                setattr(held if who == "held" else other, field, value)
                continue
            writer = other if step[0] == "save_other" else held
            sent = own_changes(writer)
            if step[0] == "flush":
                await uow.flush()
            else:
                await writer.save()
            expected.update(sent)
            # The held object knows what is stored, and shows it wherever it has no change of
            # its own; so does the other one once it wrote (a save that sends nothing leaves
            # it a copy of its time).
            knowing = [held, writer] if sent and writer is other else [held]
            for document in knowing:
                snapshot = get_snapshot(document) or {}
                assert {f: snapshot[f] for f in FIELDS} == expected, (steps, document)
            mine = own_changes(held)
            assert {f: getattr(held, f) for f in FIELDS} == {**expected, **mine}
        sent = own_changes(held)
    expected.update(sent)
    raw = await stored(item) or {}
    assert {f: raw[f] for f in FIELDS} == expected, steps
    await truthful(held, fields=True)


async def _fail_the_read_after_the_save(db: Any, data: dict[str, Any]) -> None:
    """Let the block's own ``get`` pass, then make every later ``find`` (the read the save
    adds) meet ``data``."""
    await db.client.admin.command(
        {"configureFailPoint": "failCommand", "mode": {"skip": 1},
         "data": {"failCommands": ["find"], **data}}
    )


@pytest.mark.parametrize(
    "fault",
    [{"blockConnection": True, "blockTimeMS": 2000}, {"errorCode": 2}],
    ids=["held_past_the_timeout", "refused"],
)
async def test_a_failed_read_after_the_save_dooms_the_block(
    odm_database: Any, fault: dict[str, Any]
) -> None:
    """The save went through in the block, but the held object could not learn it: its next
    write, or the flush, could send values the save replaced. The read keeps to the save's
    ``timeout=``, its error is raised (noted), and the block can only be rolled back."""
    doc = await OoItem(n=1).insert()
    before = await OoItem.objects.get(id=doc.id)
    await _fail_the_read_after_the_save(odm_database, fault)
    try:
        with pytest.raises(odm.TransactionError, match="OoItem"):
            async with transaction():
                held = await OoItem.objects.get(id=doc.id)
                held.m = 7
                before.n = 5
                started = time.monotonic()
                with pytest.raises(Exception) as raised:
                    await before.save(timeout=0.3)
                took = time.monotonic() - started
    finally:
        await fail_points_off(odm_database)
    assert took < 1.5, took  # not the 2 s the server held the read
    assert any("can only be rolled back" in note for note in raised.value.__notes__)
    assert await stored(doc) == {"_id": doc.id, "n": 1, "m": 0, "k": 0, "tags": []}
