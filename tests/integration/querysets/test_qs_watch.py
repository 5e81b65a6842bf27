"""watch(): typed change events filtered by the queryset; a clear error on a standalone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import aclosing
from typing import Any

import pytest
from qs_support import QsCustomer

import odm
from odm import ChangeEvent
from odm.drivers import DriverName
from odm.server import LocalServer


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
    async with aclosing(stream) as changes:
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
    async with aclosing(by_id) as changes:
        seen = []
        async for change in changes:
            seen.append((change.operation, change.document))
            if change.operation == "delete":
                break
    assert [op for op, _ in seen] == ["insert", "update", "delete"]
    assert seen[-1][1] is None


@pytest.fixture(scope="module")
def standalone() -> Iterator[LocalServer]:
    server = LocalServer(replica_set=None)
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
            async with aclosing(QsCustomer.objects.watch()) as changes:
                async for _ in changes:
                    break
    finally:
        await odm.disconnect(None)


async def _events(qs: Any, start: Any, last_id: Any) -> list[tuple[str, Any]]:
    """The (operation, _id) of the events ``qs.watch()`` delivers from ``start`` up to the
    insert of ``last_id``."""
    seen: list[tuple[str, Any]] = []
    async with aclosing(qs.watch(start_at_operation_time=start)) as changes:
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
