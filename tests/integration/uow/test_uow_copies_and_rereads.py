"""Change tracking under the unit of work, in the cases a probe of session 17 found wrong:

- the commit's flush wrote a tracked document that had no change of its own over what a copy
  of it (``model_copy``, ``copy.copy``, ``copy.deepcopy``) saved in the block (under the
  optimistic lock: ``StaleDocument`` though nobody else wrote);
- after ``held.id = new``, a query for the old id returned ``held``, carrying the new id, and
  changes meant for the old document landed on the new one;
- a document inserted in a block that then aborted kept the values a queryset ``update()`` of
  the block had read into it, and its next ``save()`` stored them;
- a change made before a queryset ``update()`` read the document again was lost by an abort
  (the read held it, so the abort took it for a value read).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import bson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from uow_support import fail_point, stored, truthful

import odm
from odm import F, executor, transaction
from odm.models.tracking import get_snapshot
from tests.properties import server_property


class TtItem(odm.Document):
    n: int = 0
    m: int = 0
    tags: list[str] = []
    hits: int = 0

    class Meta:
        collection = "tt_items"


class TtLocked(odm.Document):
    n: int = 0
    m: int = 0

    class Meta:
        collection = "tt_locked"
        optimistic_lock = True


class Abort(Exception):
    """The block's own failure."""


COPIES: dict[str, Callable[[Any], Any]] = {
    "model_copy": lambda doc: doc.model_copy(),
    "copy": copy.copy,
    "deepcopy": copy.deepcopy,
}


# -- D1: the flush and the copies of a tracked document ---------------------------------------


@pytest.mark.parametrize("how", sorted(COPIES))
async def test_the_flush_leaves_a_copys_save_alone(odm_database: Any, how: str) -> None:
    item = await TtItem().insert()
    async with transaction():
        held = await TtItem.objects.get(id=item.id)  # tracked, never changed
        dup = COPIES[how](held)
        dup.n = 5
        await dup.save()
    assert (await stored(item) or {})["n"] == 5
    # The held object learnt what its copy saved: it tells the truth, fields included.
    assert held.n == 5
    await truthful(held, fields=True)
    await truthful(dup, fields=True)


async def test_no_stale_document_for_a_copys_save_under_the_lock(odm_database: Any) -> None:
    item = await TtLocked().insert()
    async with transaction():
        held = await TtLocked.objects.get(id=item.id)
        dup = held.model_copy()
        dup.n = 5
        await dup.save()
    raw = await stored(item) or {}
    assert (raw["n"], raw["version"]) == (5, 1)
    await truthful(held, fields=True)


async def test_the_flush_writes_only_a_held_documents_own_changes(odm_database: Any) -> None:
    item = await TtItem(tags=["s"]).insert()
    async with transaction():
        held = await TtItem.objects.get(id=item.id)
        dup = held.model_copy(deep=True)
        dup.n = 5
        dup.tags.append("copy")
        await dup.save()
        held.m = 7  # the held object's own changes, made on what it loaded
        held.tags.append("held")
    raw = await stored(item) or {}
    assert (raw["n"], raw["m"], raw["tags"]) == (5, 7, ["s", "copy", "held"])
    await truthful(held, fields=True)


@pytest.mark.parametrize("more", [False, True])
async def test_appends_a_copy_saved_for_the_held_document_are_not_doubled(
    odm_database: Any, more: bool
) -> None:
    item = await TtItem(tags=["s"]).insert()
    async with transaction():
        held = await TtItem.objects.get(id=item.id)
        held.tags.append("x")  # not saved: the copy made now carries it
        dup = copy.deepcopy(held)
        if more:
            dup.tags.append("c")
        await dup.save()
    expected = ["s", "x", "c"] if more else ["s", "x"]
    assert (await stored(item) or {})["tags"] == expected
    await truthful(held, fields=True)


async def test_a_held_document_changed_under_the_lock_is_still_stale(odm_database: Any) -> None:
    # The copy did write: the held object's own change was made on a version replaced since.
    item = await TtLocked().insert()
    with pytest.raises(odm.StaleDocument):
        async with transaction():
            held = await TtLocked.objects.get(id=item.id)
            dup = held.model_copy()
            dup.n = 5
            await dup.save()
            held.m = 7
    assert (await stored(item) or {})["n"] == 0
    await truthful(held)
    await truthful(dup)


async def test_an_abort_takes_back_what_a_held_document_learnt_from_a_copy(
    odm_database: Any,
) -> None:
    item = await TtItem().insert()
    with pytest.raises(Abort):
        async with transaction() as uow:
            held = await TtItem.objects.get(id=item.id)
            dup = held.model_copy()
            dup.n = 5
            await dup.save()
            held.m = 7
            await uow.flush()  # held learns n=5 and writes m=7
            assert (held.n, held.m) == (5, 7)
            raise Abort
    # n=5 was the copy's save, rolled back; m=7 is the held object's own intent.
    assert (held.n, held.m) == (0, 7)
    assert (dup.n, dup.m) == (5, 0)
    await truthful(held)
    await truthful(dup)
    await held.save()
    raw = await stored(item) or {}
    assert (raw["n"], raw["m"]) == (0, 7)


async def test_a_copy_diffs_against_what_an_insert_stored(odm_database: Any) -> None:
    # The copies' common knowledge of the stored document (copies.Family) is what the insert
    # wrote, not what an earlier incarnation of the id, deleted since, stored.
    item = await TtItem().insert()
    dup = copy.copy(item)
    dup.n = 5
    await dup.save()
    await item.delete()
    await item.insert()  # n=0 under the same id
    await dup.save()  # dup still says n=5: it sends it
    assert (await stored(item) or {})["n"] == 5
    async with transaction():
        again = await TtItem.objects.get(id=item.id)
        twin = again.model_copy()
        twin.n = 7
        await twin.save()
        await again.delete()
        await again.insert()  # n=5: the copy's n=7 was deleted with the document
    # The flush had nothing of the deleted document's to teach the tracked object.
    assert (await stored(item) or {})["n"] == 5
    await truthful(again, fields=True)


async def test_a_copy_made_in_an_aborted_block_is_put_back_too(odm_database: Any) -> None:
    # The copy starts from its source's snapshot, one of the block's writes: an abort puts it
    # back as it puts the source back (found by the state machine with model_copy()).
    item = await TtItem().insert()
    fresh = TtItem(n=2)
    with pytest.raises(Abort):
        async with transaction():
            held = await TtItem.objects.get(id=item.id)
            held.n = 5
            await held.save()
            dup = held.model_copy()
            await fresh.insert()
            twin = copy.deepcopy(fresh)
            raise Abort
    for document in (held, dup, fresh, twin):
        await truthful(document)
    assert not twin.is_stored
    await dup.save()  # its n=5 was rolled back: sent again
    assert (await stored(item) or {})["n"] == 5
    await held.save()  # diffed against what its copy wrote: nothing left to send
    assert (await stored(item) or {})["n"] == 5
    await twin.save()
    assert (await stored(fresh) or {})["n"] == 2


# -- D4: an id changed in the block -----------------------------------------------------------


async def test_a_query_by_the_old_id_never_returns_the_object_that_left_it(
    odm_database: Any,
) -> None:
    item = await TtItem(n=1).insert()
    old, new = item.id, bson.ObjectId()
    async with transaction():
        held = await TtItem.objects.get(id=old)
        held.id = new  # a new document now
        again = await TtItem.objects.get(id=old)
        assert again is not held and again.id == old and again.n == 1
        assert [doc.id for doc in await TtItem.objects.filter(id=old)] == [old]
        assert await TtItem.objects.get(id=old) is again  # one object for the old id again
        await held.save()  # inserts the new document
        assert await TtItem.objects.get(id=new) is held
        assert (await TtItem.objects.get(id=old)) is again
        again.n = 99  # a change of the old document
        await TtItem.objects.filter(id=old).update(hits=F("hits") + 1)
        assert (again.n, again.hits, held.hits) == (99, 1, 0)
    rows = {row["_id"]: row["n"] async for row in executor.collection(TtItem).find({})}
    assert rows == {old: 99, new: 1}
    await truthful(held, fields=True)
    await truthful(again, fields=True)


async def test_an_id_changed_back_is_the_held_object_again(odm_database: Any) -> None:
    item = await TtItem(n=1).insert()
    async with transaction():
        held = await TtItem.objects.get(id=item.id)
        held.id = bson.ObjectId()
        held.id = item.id
        held.n = 2
        assert await TtItem.objects.get(id=item.id) is held
    assert (await stored(item) or {})["n"] == 2


# -- D7: a document inserted in an aborted block ----------------------------------------------


async def test_an_inserted_document_gives_back_what_the_block_only_read(
    odm_database: Any,
) -> None:
    doc = TtItem(n=1, tags=["mine"])
    with pytest.raises(Abort):
        async with transaction():
            await doc.insert()
            await TtItem.objects.filter(id=doc.id).update(
                n=F("n") + 100, tags=F("tags").push("server")
            )
            assert (doc.n, doc.tags) == (101, ["mine", "server"])
            doc.m = 3  # a change of the block's code, after the read
            raise Abort
    assert not doc.is_stored
    assert (doc.n, doc.tags, doc.m) == (1, ["mine"], 3)
    await doc.save()
    raw = await stored(doc) or {}
    assert (raw["n"], raw["tags"], raw["m"]) == (1, ["mine"], 3)


@pytest.mark.usefixtures("fail_points_off")
@pytest.mark.odm_drivers("pymongo")
async def test_a_retried_block_inserts_what_the_first_attempt_did(odm_database: Any) -> None:
    doc = TtItem(n=0)
    attempts = 0

    @odm.atomic(retries=2)
    async def body() -> None:
        nonlocal attempts
        attempts += 1
        await doc.insert()
        await TtItem.objects.filter(id=doc.id).update(n=F("n") + 1)
        if attempts == 1:
            await _outside(fail_point(odm_database, {
                "failCommands": ["commitTransaction"], "errorCode": 112,
                "errorLabels": ["TransientTransactionError"],
            }))

    await body()
    assert attempts == 2
    assert (await stored(doc) or {})["n"] == 1
    await truthful(doc, fields=True)


async def _outside(call: Any) -> None:
    """Run ``call`` with no bound session (inside a block PyMongo would send it in the
    transaction)."""
    import asyncio
    import contextvars

    await asyncio.get_running_loop().create_task(call, context=contextvars.Context())


# -- D8: the block's own changes, read again by a queryset write --------------------------------


@pytest.mark.parametrize("saved", [False, True])
async def test_an_abort_keeps_changes_a_queryset_write_read_again(
    odm_database: Any, saved: bool
) -> None:
    item = await TtItem().insert()
    with pytest.raises(Abort):
        async with transaction():
            held = await TtItem.objects.get(id=item.id)
            held.n = 5
            held.tags.append("mine")
            if saved:
                await held.save()
            await TtItem.objects.filter(id=item.id).update(
                hits=F("hits") + 1, tags=F("tags").push("server")
            )
            assert (held.n, held.tags, held.hits) == (5, ["mine", "server"], 1)
            held.tags.append("late")  # after the read: still an append
            raise Abort
    assert (held.n, held.tags, held.hits) == (5, ["mine", "late"], 0)
    await truthful(held)
    await held.save()
    raw = await stored(item) or {}
    assert (raw["n"], raw["tags"], raw["hits"]) == (5, ["mine", "late"], 0)


async def test_a_change_after_the_read_wins_over_the_one_before(odm_database: Any) -> None:
    item = await TtItem().insert()
    with pytest.raises(Abort):
        async with transaction():
            held = await TtItem.objects.get(id=item.id)
            held.n = 5
            await TtItem.objects.filter(id=item.id).update(hits=F("hits") + 1)
            held.n = 3
            await held.save()
            await TtItem.objects.filter(id=item.id).update(hits=F("hits") + 1)
            raise Abort
    assert (held.n, held.hits) == (3, 0)
    await truthful(held)


async def test_a_refresh_after_a_save_keeps_the_saved_value_after_an_abort(
    odm_database: Any,
) -> None:
    item = await TtItem().insert()
    with pytest.raises(Abort):
        async with transaction():
            held = await TtItem.objects.get(id=item.id)
            held.n = 5
            await held.save()
            held.m = 9  # not saved: refresh() drops it, as it always does
            await held.refresh()
            raise Abort
    assert (held.n, held.m) == (5, 0)
    await truthful(held)


async def test_the_lock_keeps_a_change_read_again_on_the_right_version(
    odm_database: Any,
) -> None:
    item = await TtLocked().insert()
    with pytest.raises(Abort):
        async with transaction():
            held = await TtLocked.objects.get(id=item.id)
            held.n = 5
            await TtLocked.objects.filter(id=item.id).update(m=F("m") + 1)
            raise Abort
    assert (held.n, held.m, held.version) == (5, 0, 0)
    await truthful(held)
    await held.save()  # not stale: nobody else wrote
    raw = await stored(item) or {}
    assert (raw["n"], raw["m"], raw["version"]) == (5, 0, 1)


# -- the intent after an abort, found at random -------------------------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set_n"), st.integers(1, 9)),
        st.tuples(st.just("append"), st.sampled_from("xyz")),
        st.tuples(st.just("save"), st.none()),
        st.tuples(st.just("bump"), st.none()),
        st.tuples(st.just("flush"), st.none()),
        st.tuples(st.just("reload"), st.none()),
        st.tuples(st.just("copy_save"), st.integers(1, 9)),
    ),
    max_size=6,
)


@pytest.mark.odm_drivers("pymongo")
@server_property(max_examples=25)
@given(start=st.sampled_from(["loaded", "outside", "inserted"]), ops=OPS)
async def test_an_abort_keeps_exactly_the_blocks_own_changes(
    odm_database: Any, start: str, ops: list[tuple[str, Any]]
) -> None:
    """After an abort the object keeps the changes its code made (``n`` set, ``tags``
    appended: a copy's save is the copy's), and every value it only read (``hits``, bumped by
    queryset updates) is what the database holds."""
    await executor.collection(TtItem).delete_many({})
    base = None if start == "inserted" else await TtItem(tags=["s"]).insert()
    obj = TtItem(tags=["s"]) if base is None else base
    intent_n: int | None = None
    appended: list[str] = []
    with pytest.raises(Abort):
        async with transaction() as uow:
            if start == "inserted":
                await obj.insert()
            elif start == "loaded":
                obj = await TtItem.objects.get(id=obj.id)
            for op, arg in ops:
                if op == "set_n":
                    obj.n = intent_n = arg
                elif op == "append":
                    obj.tags.append(arg)
                    appended.append(arg)
                elif op == "save":
                    await obj.save()
                elif op == "bump":
                    await TtItem.objects.filter(id=obj.id).update(hits=F("hits") + 1)
                elif op == "flush":
                    await uow.flush()
                elif op == "reload":
                    await TtItem.objects.filter(id=obj.id).first()
                elif obj.is_stored:  # copy_save
                    dup = obj.model_copy(deep=True)
                    dup.hits = arg
                    await dup.save()
            raise Abort
    raw = await stored(obj)
    if start == "inserted":
        assert raw is None and not obj.is_stored
        expect = {"n": intent_n or 0, "tags": ["s", *appended], "hits": 0}
    else:
        assert raw is not None and obj.is_stored
        assert get_snapshot(obj) == raw
        expect = {
            "n": raw["n"] if intent_n is None else intent_n,
            "tags": raw["tags"] + appended,
            "hits": raw["hits"],
        }
    assert {"n": obj.n, "tags": obj.tags, "hits": obj.hits} == expect, (start, ops)
