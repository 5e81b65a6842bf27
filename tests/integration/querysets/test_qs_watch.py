"""watch(): typed change events filtered by the queryset; a clear error on a standalone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from qs_support import QsCustomer

import odm
from odm import ChangeEvent
from odm.drivers import DriverName
from odm.server import LocalServer, memory_temp_dir


async def test_watch_yields_typed_events_matching_the_filter(odm_database: Any) -> None:
    # Start from "now" on the server, so that nothing races the opening of the stream.
    start = (await odm_database.command({"ping": 1}))["operationTime"]
    ann = await QsCustomer(email="ann@x.io", name="Ann", age=34).insert()
    bob = await QsCustomer(email="bob@x.io", name="Bob", age=17).insert()
    await QsCustomer.objects.filter(name="Ann").update(age=35)
    await QsCustomer.objects.filter(name="Bob").update(age=16)
    await bob.delete()
    events: list[ChangeEvent[QsCustomer]] = []
    stream = QsCustomer.objects.filter(age__gte=18).watch(start_at_operation_time=start)
    async with stream as changes:
        async for change in changes:
            events.append(change)
            if len(events) == 2:
                break
    assert [e.operation for e in events] == ["insert", "update"]
    assert all(isinstance(e.document, QsCustomer) for e in events)
    assert [e.document.age for e in events if e.document] == [34, 35]
    assert events[0].document_key == {"_id": ann.id}
    # on _id alone, deletes match too
    by_id = QsCustomer.objects.filter(id=bob.id).watch(start_at_operation_time=start)
    async with by_id as changes:
        seen = []
        async for change in changes:
            seen.append((change.operation, change.document))
            if change.operation == "delete":
                break
    assert [op for op, _ in seen] == ["insert", "update", "delete"]
    assert seen[-1][1] is None


@pytest.fixture(scope="module")
def standalone() -> Iterator[LocalServer]:
    server = LocalServer(replica_set=None, temp_dir=memory_temp_dir())
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_watch_on_a_standalone_is_a_configuration_error(
    standalone: LocalServer, odm_driver: DriverName
) -> None:
    await odm.connect(standalone.uri, db=f"odm_test_{uuid.uuid4().hex[:8]}", driver=odm_driver)
    try:
        with pytest.raises(odm.ConfigurationError, match="replica set"):
            async with QsCustomer.objects.watch():
                pass
        with pytest.raises(odm.ConfigurationError, match="replica set"):
            await QsCustomer.objects.watch()
        with pytest.raises(odm.ConfigurationError, match="replica set"):
            async for _ in QsCustomer.objects.watch():
                break
    finally:
        await odm.disconnect(None)


async def _events(qs: Any, start: Any, last_id: Any) -> list[tuple[str, Any]]:
    """The (operation, _id) of the events ``qs.watch()`` delivers from ``start`` up to the
    insert of ``last_id``."""
    seen: list[tuple[str, Any]] = []
    async with qs.watch(start_at_operation_time=start) as changes:
        async for change in changes:
            seen.append((change.operation, change.document_key["_id"]))
            if change.document_key["_id"] == last_id:
                break
    return seen


async def test_watch_with_a_negative_filter_delivers_no_unprovable_delete(
    odm_database: Any,
) -> None:
    """Issue #19, item 7: a delete event has no document, so ``exclude(name="Bob")`` cannot
    tell Ann's delete from Bob's: neither is delivered (on main both were, Bob's too)."""
    start = (await odm_database.command({"ping": 1}))["operationTime"]
    ann = await QsCustomer(email="ann@x.io", name="Ann", age=34, tags=["a"]).insert()
    bob = await QsCustomer(email="bob@x.io", name="Bob", age=17, tags=["b"]).insert()
    await ann.delete()
    await bob.delete()
    zed = await QsCustomer(email="zed@x.io", name="Zed", age=50).insert()
    negative = [
        QsCustomer.objects.exclude(name="Bob"),
        QsCustomer.objects.filter(name__ne="Bob"),
        QsCustomer.objects.filter(name__nin=["Bob"]),
        QsCustomer.objects.filter(tags__nin=["b"]),
        QsCustomer.objects.exclude(age__lt=18),
    ]
    for qs in negative:
        assert await _events(qs, start, zed.id) == [("insert", ann.id), ("insert", zed.id)]
    # Bob's insert matches the id branch; no delete is provable on the whole filter.
    mixed = QsCustomer.objects.filter(odm.Q(id=bob.id) | odm.Q(name__ne="Bob"))
    assert await _events(mixed, start, zed.id) == [
        ("insert", ann.id), ("insert", bob.id), ("insert", zed.id)
    ]
    # On the id alone a delete is provable, and delivered.
    assert await _events(QsCustomer.objects.exclude(id=bob.id), start, zed.id) == [
        ("insert", ann.id), ("delete", ann.id), ("insert", zed.id)
    ]
    everything = await _events(QsCustomer.objects.all(), start, zed.id)
    assert [op for op, _ in everything] == ["insert", "insert", "delete", "delete", "insert"]


async def test_a_change_right_after_opening_is_delivered(odm_database: Any) -> None:
    """Issue #21, item 6: the stream is open when ``async with`` / ``await`` returns, so a
    change made on the next line is delivered (before, the cursor was opened on the first
    read and such a change was lost; no ``start_at_operation_time`` here)."""
    async with QsCustomer.objects.filter(age__gte=18).watch() as stream:
        assert stream.is_open and stream.resume_token is not None
        ann = await QsCustomer(email="ann@x.io", name="Ann", age=34).insert()
        change = await anext(stream)
    assert (change.operation, change.document_key) == ("insert", {"_id": ann.id})
    assert isinstance(change.document, QsCustomer) and change.document.name == "Ann"
    assert not stream.is_open

    stream = await QsCustomer.objects.filter(id=ann.id).watch()
    try:
        await ann.delete()
        change = await anext(stream)
        assert (change.operation, change.document) == ("delete", None)
    finally:
        await stream.close()
    # A closed stream ends iteration, and is not opened again.
    assert [c async for c in stream] == []
    with pytest.raises(odm.QueryError, match="closed"):
        await stream


async def test_async_for_over_watch_still_works(odm_database: Any) -> None:
    """The older spelling: the stream opens when the loop starts."""
    start = (await odm_database.command({"ping": 1}))["operationTime"]
    ann = await QsCustomer(email="ann@x.io", name="Ann", age=34).insert()
    async for change in QsCustomer.objects.watch(start_at_operation_time=start):
        assert change.document_key == {"_id": ann.id}
        break


async def test_resume_after_a_token_misses_nothing_and_repeats_nothing(
    odm_database: Any,
) -> None:
    adults = QsCustomer.objects.filter(age__gte=18)
    async with adults.watch() as stream:
        # The token of a stream that has seen nothing yet is where the server was.
        opened_at = stream.resume_token
        ann = await QsCustomer(email="ann@x.io", name="Ann", age=34).insert()
        first = await anext(stream)
    assert opened_at is not None and first.document_key == {"_id": ann.id}
    bob = await QsCustomer(email="bob@x.io", name="Bob", age=40).insert()
    cyd = await QsCustomer(email="cyd@x.io", name="Cyd", age=50).insert()
    for start in ({"resume_after": first.resume_token}, {"start_after": first.resume_token}):
        async with adults.watch(**start) as stream:
            assert [(await anext(stream)).document_key["_id"] for _ in range(2)] == [
                bob.id, cyd.id
            ]
    async with adults.watch(resume_after=opened_at) as stream:
        assert (await anext(stream)).document_key == {"_id": ann.id}


async def test_full_document_options(odm_database: Any) -> None:
    ann = await QsCustomer(email="ann@x.io", name="Ann", age=34).insert()
    # "default": an update event carries what changed, not the document.
    async with QsCustomer.objects.filter(id=ann.id).watch(full_document="default") as stream:
        await QsCustomer.objects.filter(id=ann.id).update(age=35)
        change = await anext(stream)
    assert (change.operation, change.document) == ("update", None)
    assert change.raw["updateDescription"]["updatedFields"] == {"age": 35}
    # Pre- and post-images, once the collection keeps them (MongoDB 6.0).
    await odm_database.command(
        {"collMod": "qs_customers", "changeStreamPreAndPostImages": {"enabled": True}}
    )
    images = QsCustomer.objects.filter(id=ann.id).watch(
        full_document="required", full_document_before_change="required"
    )
    async with images as stream:
        await QsCustomer.objects.filter(id=ann.id).update(age=36)
        change = await anext(stream)
    assert change.before is not None and change.before.age == 35
    assert change.document is not None and change.document.age == 36


async def test_watch_options_are_checked_before_anything_is_sent(odm_database: Any) -> None:
    token = {"_data": "00"}
    with pytest.raises(odm.QueryError, match="resume_after and start_after"):
        QsCustomer.objects.watch(resume_after=token, start_after=token)
    bad: Any = "always"
    with pytest.raises(odm.QueryError, match="full_document='always'"):
        QsCustomer.objects.watch(full_document=bad)
    with pytest.raises(odm.QueryError, match="full_document_before_change='always'"):
        QsCustomer.objects.watch(full_document_before_change=bad)
    with pytest.raises(odm.QueryError, match="never deliver"):
        QsCustomer.objects.none().watch()
